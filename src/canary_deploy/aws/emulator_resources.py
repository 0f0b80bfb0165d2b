"""moto patches for the template's production settings, applied inside the emulator's
server process (`emulator.apply_moto_patch`). Each makes moto's CloudFormation do what
CloudFormation does for a property our template sets; none invents behaviour:

- load balancers keep `LoadBalancerAttributes` (moto drops them) and are updated in place
  (moto has no update: the resource became None), replaced on a new scheme as on AWS;
  `LoadBalancerFullName` / `TargetGroupFullName` (moto: not implemented) are the ARN's
  tail, as CloudWatch and Application Auto Scaling use them;
- task definitions keep `TaskRoleArn`, `ExecutionRoleArn` and `RuntimePlatform` (moto
  drops them), and an update stores container definitions camelCased like a create;
- `AWS::ApplicationAutoScaling::ScalableTarget` and `::ScalingPolicy`, which moto's
  CloudFormation does not know, register with moto's own Application Auto Scaling;
- ECS services keep their `NetworkConfiguration` (subnets, public IP; moto drops it);
- an update creates or deletes the resources whose `Condition` it changes (moto: never).
"""

from __future__ import annotations

from typing import Any


def _replace(cls: Any, **methods: Any) -> None:
    """Set moto's methods by name (they are not ours to type)."""
    for name, method in methods.items():
        setattr(cls, name, method)


def _full_name(arn: str) -> str:
    """`app/name/id` of a load balancer ARN, `targetgroup/name/id` of a target group's."""
    return arn.split(":", 5)[5].removeprefix("loadbalancer/")


def _attributes(properties: dict[str, Any]) -> dict[str, str]:
    # moto leaves an `AWS::NoValue` list item as None; CloudFormation drops it.
    attributes = [a for a in properties.get("LoadBalancerAttributes", []) if a]
    return {a["Key"]: str(a["Value"]) for a in attributes}


def patch_load_balancers() -> None:
    """Load balancers keep their attributes, update in place and give their full name;
    target groups give theirs."""
    from moto.elbv2 import models

    _patch_balancer_class(models)

    def group_attribute(self: Any, attribute_name: str) -> Any:
        from moto.cloudformation.exceptions import UnformattedGetAttTemplateException

        if attribute_name == "TargetGroupFullName":
            return _full_name(self.arn)
        raise UnformattedGetAttTemplateException()

    _replace(models.FakeTargetGroup, get_cfn_attribute=group_attribute)


def _patch_balancer_class(models: Any) -> None:
    """`FakeLoadBalancer` (of moto's `elbv2.models`) from CloudFormation: created with its
    `LoadBalancerAttributes`, updated in place (replaced on a new scheme), and its
    `LoadBalancerFullName` for `Fn::GetAtt`."""
    balancer_class = models.FakeLoadBalancer
    create = balancer_class.create_from_cloudformation_json
    get_attribute = balancer_class.get_cfn_attribute

    def create_from_cloudformation_json(
        cls: Any, /, resource_name: str, cloudformation_json: Any, account_id: str,
        region_name: str, **kwargs: Any,
    ) -> Any:  # fmt: skip
        balancer = create(resource_name, cloudformation_json, account_id, region_name, **kwargs)
        backend = models.elbv2_backends[account_id][region_name]
        backend.modify_load_balancer_attributes(
            balancer.arn, _attributes(cloudformation_json["Properties"])
        )
        return balancer

    def update_from_cloudformation_json(
        cls: Any, original_resource: Any, new_resource_name: str, cloudformation_json: Any,
        account_id: str, region_name: str,
    ) -> Any:  # fmt: skip
        properties = cloudformation_json["Properties"]
        if properties.get("Scheme", "internet-facing") != original_resource.scheme:
            return create_from_cloudformation_json(
                cls, new_resource_name, cloudformation_json, account_id, region_name
            )
        backend = models.elbv2_backends[account_id][region_name]
        backend.modify_load_balancer_attributes(original_resource.arn, _attributes(properties))
        return original_resource

    def get_cfn_attribute(self: Any, attribute_name: str) -> Any:
        if attribute_name == "LoadBalancerFullName":
            return _full_name(self.arn)
        return get_attribute(self, attribute_name)

    _replace(
        balancer_class,
        create_from_cloudformation_json=classmethod(create_from_cloudformation_json),
        update_from_cloudformation_json=classmethod(update_from_cloudformation_json),
        get_cfn_attribute=get_cfn_attribute,
    )


# What `register_task_definition` takes besides family, containers, volumes and memory.
_TASK_PROPERTIES = {
    "TaskRoleArn": "task_role_arn",
    "ExecutionRoleArn": "execution_role_arn",
    "RuntimePlatform": "runtime_platform",
}


def patch_task_definitions() -> None:
    from moto.core.utils import pascal_to_camelcase, remap_nested_keys
    from moto.ecs import models

    def register(properties: dict[str, Any], account_id: str, region_name: str) -> Any:
        extra = {arg: properties[key] for key, arg in _TASK_PROPERTIES.items() if key in properties}
        if "runtime_platform" in extra:
            extra["runtime_platform"] = remap_nested_keys(
                extra["runtime_platform"], pascal_to_camelcase
            )
        return models.ecs_backends[account_id][region_name].register_task_definition(
            family=properties["Family"],
            container_definitions=remap_nested_keys(
                properties.get("ContainerDefinitions", []), pascal_to_camelcase
            ),
            volumes=remap_nested_keys(properties.get("Volumes", []), pascal_to_camelcase),
            memory=properties.get("Memory"),
            **extra,
        )

    def create_from_cloudformation_json(
        cls: Any, /, resource_name: str, cloudformation_json: Any, account_id: str,
        region_name: str, **kwargs: Any,
    ) -> Any:  # fmt: skip
        return register(cloudformation_json["Properties"], account_id, region_name)

    def update_from_cloudformation_json(
        cls: Any, original_resource: Any, new_resource_name: str, cloudformation_json: Any,
        account_id: str, region_name: str,
    ) -> Any:  # fmt: skip
        # A new revision, as on AWS (every property of a task definition replaces it).
        models.ecs_backends[account_id][region_name].deregister_task_definition(
            original_resource.arn
        )
        return register(cloudformation_json["Properties"], account_id, region_name)

    task_class = models.TaskDefinition
    _replace(
        task_class,
        create_from_cloudformation_json=classmethod(create_from_cloudformation_json),
        update_from_cloudformation_json=classmethod(update_from_cloudformation_json),
    )


# moto finds models through CloudFormationModel.__subclasses__(), which holds weak
# references: ours are kept alive here.
_MODELS: list[type] = []


def patch_autoscaling() -> None:
    """Two CloudFormation models over moto's Application Auto Scaling backend; defined
    before the server answers, so moto's model map (built on first use) finds them."""
    _MODELS.extend((_scalable_target_model(), _scaling_policy_model()))


class _RegisteringModel:
    """What both Application Auto Scaling models share, mixed into moto's
    `CloudFormationModel` (a direct subclass each: moto lists `__subclasses__()`): the type
    names, no `Fn::GetAtt` attributes, an update that registers again (both APIs overwrite
    what the key names) and a delete from the resource moto keeps."""

    TYPE = ""
    NAME_TYPE = ""  # the property that names the resource ("": none)

    @classmethod
    def cloudformation_name_type(cls) -> str:
        return cls.NAME_TYPE

    @classmethod
    def cloudformation_type(cls) -> str:
        return cls.TYPE

    @classmethod
    def has_cfn_attr(cls, attr: str) -> bool:
        return False

    @classmethod
    def update_from_cloudformation_json(
        cls: Any, original_resource: Any, new_resource_name: str, cloudformation_json: Any,
        account_id: str, region_name: str,
    ) -> Any:  # fmt: skip
        return cls.create_from_cloudformation_json(
            new_resource_name, cloudformation_json, account_id, region_name
        )

    @classmethod
    def delete_from_cloudformation_json(
        cls, resource_name: str, cloudformation_json: Any, account_id: str, region_name: str
    ) -> None:
        pass  # `delete` does it, from the resource moto keeps

    def is_created(self) -> bool:
        return True


def _scalable_target_model() -> type:
    from moto.applicationautoscaling.models import applicationautoscaling_backends as backends
    from moto.core.common_models import CloudFormationModel

    class ScalableTarget(_RegisteringModel, CloudFormationModel):
        TYPE = "AWS::ApplicationAutoScaling::ScalableTarget"

        def __init__(self, key: tuple[str, str, str]) -> None:
            self.key = key  # namespace, resource id, dimension

        @property
        def physical_resource_id(self) -> str:
            namespace, resource_id, dimension = self.key
            return f"{resource_id}|{dimension}|{namespace}"  # what CloudFormation's Ref gives

        @classmethod
        def create_from_cloudformation_json(
            cls, resource_name: str, cloudformation_json: Any, account_id: str,
            region_name: str, **kwargs: Any,
        ) -> ScalableTarget:  # fmt: skip
            p = cloudformation_json["Properties"]
            key = (p["ServiceNamespace"], p["ResourceId"], p["ScalableDimension"])
            backends[account_id][region_name].register_scalable_target(
                *key,
                int(p["MinCapacity"]),
                int(p["MaxCapacity"]),
                p.get("RoleARN", ""),
                p.get("SuspendedState"),
            )
            return cls(key)

        def delete(self, account_id: str, region_name: str) -> None:
            backends[account_id][region_name].deregister_scalable_target(*self.key)

    return ScalableTarget


def _scaling_policy_model() -> type:
    from moto.applicationautoscaling.models import applicationautoscaling_backends as backends
    from moto.core.common_models import CloudFormationModel

    class ScalingPolicy(_RegisteringModel, CloudFormationModel):
        TYPE = "AWS::ApplicationAutoScaling::ScalingPolicy"
        NAME_TYPE = "PolicyName"

        def __init__(self, name: str, key: tuple[str, str, str]) -> None:
            self.name, self.key = name, key

        @property
        def physical_resource_id(self) -> str:
            return self.name

        @classmethod
        def create_from_cloudformation_json(
            cls, resource_name: str, cloudformation_json: Any, account_id: str,
            region_name: str, **kwargs: Any,
        ) -> ScalingPolicy:  # fmt: skip
            p = cloudformation_json["Properties"]
            resource_id, dimension, namespace = str(p["ScalingTargetId"]).split("|")
            body = dict(p["TargetTrackingScalingPolicyConfiguration"])
            body["TargetValue"] = float(body["TargetValue"])
            backends[account_id][region_name].put_scaling_policy(
                p["PolicyName"], namespace, resource_id, dimension, body, p["PolicyType"]
            )
            return cls(p["PolicyName"], (namespace, resource_id, dimension))

        def delete(self, account_id: str, region_name: str) -> None:
            backends[account_id][region_name].delete_scaling_policy(self.name, *self.key)

    return ScalingPolicy


def patch_conditional_resources() -> None:
    """A stack update creates the resources whose `Condition` became true and deletes those
    whose condition became false, as CloudFormation does (moto compares the resources' JSON
    only, so adding a certificate never created the redirect listener)."""
    from moto.cloudformation import parsing

    update = parsing.ResourceMap.update

    def update_with_conditions(self: Any, template: Any, parameters: Any = None) -> None:
        update(self, template, parameters)
        conditional = [
            (name, resource) for name, resource in self._resource_json_map.items()
            if resource.get("Condition")
        ]  # fmt: skip
        for name, resource in conditional:
            if (
                self.lazy_condition_map[resource["Condition"]]
                and name not in self._parsed_resources
            ):
                _ = self[name]  # moto creates a resource when it is first looked up
        for name, resource in reversed(conditional):  # dependents first
            if (
                not self.lazy_condition_map[resource["Condition"]]
                and name in self._parsed_resources
            ):
                self._delete_resource(self._parsed_resources.pop(name), resource)

    _replace(parsing.ResourceMap, update=update_with_conditions)


def _network(properties: dict[str, Any]) -> dict[str, Any]:
    """A service's `NetworkConfiguration` as DescribeServices gives it (camelCase)."""
    awsvpc = properties.get("NetworkConfiguration", {}).get("AwsvpcConfiguration", {})
    return {
        "awsvpcConfiguration": {
            "subnets": [str(s) for s in awsvpc.get("Subnets", [])],
            "securityGroups": [str(g) for g in awsvpc.get("SecurityGroups", [])],
            "assignPublicIp": str(awsvpc.get("AssignPublicIp", "DISABLED")),
        }
    }


def patch_service_networks() -> None:
    """ECS services from CloudFormation keep their `NetworkConfiguration` (moto drops it),
    so DescribeServices shows the subnets and public IP setting the tasks would get."""
    from moto.ecs import models

    create = models.Service.create_from_cloudformation_json
    update = models.Service.update_from_cloudformation_json

    def create_from_cloudformation_json(
        cls: Any, /, resource_name: str, cloudformation_json: Any, *args: Any, **kwargs: Any
    ) -> Any:
        service = create(resource_name, cloudformation_json, *args, **kwargs)
        service.network_configuration = _network(cloudformation_json["Properties"])
        return service

    def update_from_cloudformation_json(
        cls: Any, /, original_resource: Any, new_resource_name: str, cloudformation_json: Any,
        *args: Any, **kwargs: Any,
    ) -> Any:  # fmt: skip
        service = update(original_resource, new_resource_name, cloudformation_json, *args, **kwargs)
        service.network_configuration = _network(cloudformation_json["Properties"])
        return service

    _replace(
        models.Service,
        create_from_cloudformation_json=classmethod(create_from_cloudformation_json),
        update_from_cloudformation_json=classmethod(update_from_cloudformation_json),
    )
