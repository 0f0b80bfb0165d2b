"""An emulated AWS: a moto server subprocess on 127.0.0.1, patched so its ALB keeps weights
and a stack update can fail and roll back.

moto 5.2's CloudFormation conversion of `AWS::ElasticLoadBalancingV2::Listener`
drops `ForwardConfig` (DESIGN.md §4), and its target groups ignore
`TargetGroupAttributes` and cannot be updated in place (a stack update that changes one
loses it: every `!Ref` to it becomes empty); its ECS services drop `LoadBalancers`. moto
never fails a stack update, so it never rolls one back; an image whose URI contains
`fails-to-start` makes an update fail and roll back here as the ECS circuit breaker makes
it on AWS. The patches are applied *inside* the server process by running this module as
`python -m canary_deploy.aws.emulator PORT`; those for the template's production settings
(load balancer attributes, task roles, autoscaling) are in `emulator_resources`.
"""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from canary_deploy.aws import emulator_resources
from canary_deploy.errors import OperationFailed, UsageError

HOST = "127.0.0.1"
# Dummy credentials: moto accepts anything, and real ones must never reach it.
EMULATOR_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_REGION": "us-east-1",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def _to_bool(value: Any) -> bool:
    return value if isinstance(value, bool) else str(value).lower() == "true"


def _forward_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """ForwardConfig as the ELBv2 API would store it: int weights, bool/int stickiness."""
    groups = [
        {"TargetGroupArn": tg["TargetGroupArn"], "Weight": int(tg.get("Weight", 1))}
        for tg in config.get("TargetGroups", [])
    ]
    out: dict[str, Any] = {"TargetGroups": groups}
    sticky = config.get("TargetGroupStickinessConfig")
    if sticky is not None:
        stickiness: dict[str, Any] = {"Enabled": _to_bool(sticky.get("Enabled", False))}
        if sticky.get("DurationSeconds") is not None:
            stickiness["DurationSeconds"] = int(sticky["DurationSeconds"])
        out["TargetGroupStickinessConfig"] = stickiness
    return out


# Target group properties whose change makes CloudFormation replace the group.
_REPLACING = {
    "Port": "port",
    "Protocol": "protocol",
    "VpcId": "vpc_id",
    "TargetType": "target_type",
}


def _patch_target_groups(models: Any) -> None:
    """Target groups from CloudFormation: keep `TargetGroupAttributes` (create and update)
    and update health check and attributes in place, as CloudFormation does."""
    group_class = models.FakeTargetGroup
    create = group_class.create_from_cloudformation_json

    def apply_attributes(group: Any, properties: Mapping[str, Any]) -> Any:
        for attribute in properties.get("TargetGroupAttributes", []):
            group.attributes[attribute["Key"]] = attribute["Value"]
        return group

    def create_from_cloudformation_json(
        cls: Any, resource_name: str, cloudformation_json: Any, *args: Any, **kwargs: Any
    ) -> Any:
        group = create(resource_name, cloudformation_json, *args, **kwargs)
        return apply_attributes(group, cloudformation_json["Properties"])

    def update_from_cloudformation_json(
        cls: Any,
        original_resource: Any,
        new_resource_name: str,
        cloudformation_json: Any,
        account_id: str,
        region_name: str,
    ) -> Any:
        properties = cloudformation_json["Properties"]
        if any(
            key in properties and str(properties[key]) != str(getattr(original_resource, attr))
            for key, attr in _REPLACING.items()
        ):
            return create_from_cloudformation_json(
                cls, new_resource_name, cloudformation_json, account_id, region_name
            )
        if "HealthCheckPath" in properties:
            original_resource.health_check_path = properties["HealthCheckPath"]
        if "Matcher" in properties:
            original_resource.matcher = properties["Matcher"]
        return apply_attributes(original_resource, properties)

    group_class.create_from_cloudformation_json = classmethod(create_from_cloudformation_json)
    group_class.update_from_cloudformation_json = classmethod(update_from_cloudformation_json)


# An image URI containing this never starts in the emulated AWS: a stack update that asks
# for it fails and is rolled back, as the ECS deployment circuit breaker makes CloudFormation
# do on AWS (moto itself never fails an update and has no rollback).
FAILING_IMAGE_MARK = "fails-to-start"
# The service each image parameter of our template ends up in.
_SERVICE_OF_IMAGE = {"ImageURIStable": "ServiceStable", "ImageURICanary": "ServiceCanary"}


def _failing_service(parameters: Mapping[str, Any]) -> tuple[str, str] | None:
    """(logical id, image) of the service an update cannot start, if any."""
    for parameter, service in _SERVICE_OF_IMAGE.items():
        image = str(parameters.get(parameter, ""))
        if FAILING_IMAGE_MARK in image:
            return service, image
    return None


def _patch_failing_updates() -> None:
    """A stack update with a failing image applies every change (the listener first, as on
    AWS: the services depend on it), fails on the service, then rolls back: the previous
    template and parameters are applied again, so every resource the update changed, the
    listener included, gets the stack's previous values. Status UPDATE_ROLLBACK_COMPLETE."""
    from moto.cloudformation import models

    update = models.Stack.update

    def update_or_roll_back(
        self: Any, template: str, role_arn: str | None = None,
        parameters: dict[str, Any] | None = None, tags: dict[str, str] | None = None,
    ) -> None:  # fmt: skip
        failing = _failing_service(parameters or {})
        if failing is None:
            update(self, template, role_arn=role_arn, parameters=parameters, tags=tags)
            return
        service, image = failing
        previous_template = self.template
        previous_parameters = dict(self.resource_map.input_parameters)
        self._add_stack_event("UPDATE_IN_PROGRESS", resource_status_reason="User Initiated")
        self.template = template
        self._parse_template()
        self.resource_map.update(self.template_dict, parameters)
        reason = (
            f"Resource handler returned message: \"Error occurred during operation 'ECS "
            f"Deployment Circuit Breaker was triggered'.\" (emulated: {image} never starts)"
        )
        self.events.append(
            models.Event(self.stack_id, self.name, service, service, "AWS::ECS::Service",
                         "UPDATE_FAILED", reason, None)
        )  # fmt: skip
        self._add_stack_event(
            "UPDATE_ROLLBACK_IN_PROGRESS",
            resource_status_reason=f"The following resource(s) failed to update: [{service}].",
        )
        self.template = previous_template
        self._parse_template()
        self.resource_map.update(self.template_dict, previous_parameters)
        self.output_map = self._create_output_map()
        self._add_stack_event("UPDATE_ROLLBACK_COMPLETE")
        self.status = "UPDATE_ROLLBACK_COMPLETE"

    models.Stack.update = update_or_roll_back  # type: ignore[method-assign]


def _load_balancers(properties: Mapping[str, Any]) -> list[dict[str, Any]]:
    """A service's `LoadBalancers` as DescribeServices gives them (camelCase, int port)."""
    return [
        {
            "targetGroupArn": str(lb["TargetGroupArn"]),
            "containerName": str(lb["ContainerName"]),
            "containerPort": int(lb["ContainerPort"]),
        }
        for lb in properties.get("LoadBalancers", [])
    ]


def _patch_service_load_balancers() -> None:
    """ECS services from CloudFormation keep their `LoadBalancers` (moto drops them), so
    DescribeServices shows which target groups a service registers its tasks in. Tasks
    are still never started, so no target is ever registered (DESIGN.md section 4)."""
    from moto.ecs import models

    service_class = models.Service
    create = service_class.create_from_cloudformation_json
    update = service_class.update_from_cloudformation_json

    def create_from_cloudformation_json(
        cls: Any, resource_name: str, cloudformation_json: Any, *args: Any, **kwargs: Any
    ) -> Any:
        service = create(resource_name, cloudformation_json, *args, **kwargs)
        service.load_balancers = _load_balancers(cloudformation_json["Properties"])
        return service

    def update_from_cloudformation_json(
        cls: Any, original_resource: Any, new_resource_name: str, cloudformation_json: Any,
        *args: Any, **kwargs: Any,
    ) -> Any:  # fmt: skip
        service = update(original_resource, new_resource_name, cloudformation_json, *args, **kwargs)
        service.load_balancers = _load_balancers(cloudformation_json["Properties"])
        return service

    service_class.create_from_cloudformation_json = classmethod(create_from_cloudformation_json)  # type: ignore[assignment]
    service_class.update_from_cloudformation_json = classmethod(update_from_cloudformation_json)  # type: ignore[assignment]


def _patch_previous_values() -> None:
    """`UsePreviousValue` for a parameter the stack took the default of: moto looks it up
    among the values given at creation only (a KeyError, HTTP 500); CloudFormation uses the
    value the stack has, default or not."""
    from moto.cloudformation import models

    def resolve(self: Any, instance: Any, incoming_params: list[dict[str, Any]]) -> dict[str, Any]:
        given = {p["ParameterKey"]: p for p in incoming_params}
        return {
            key: p["ParameterValue"]
            if "ParameterValue" in p
            else instance.parameters.get(key, _as_given(instance.stack_parameters[key]))
            for key, p in given.items()
            if "ParameterValue" in p or p.get("UsePreviousValue", False)
        }

    models.CloudFormationBackend._resolve_update_parameters = resolve  # type: ignore[method-assign]


def _patch_condition_equality() -> None:
    """`Fn::Equals` compares strings on CloudFormation (a `Number` parameter's `Ref` is
    "0"); moto compares the parsed int with the literal, so `!Equals [!Ref W, "0"]` was
    never true."""
    from moto.cloudformation import parsing

    parse_condition = parsing.parse_condition

    def parse(condition: Any, resources_map: Any, condition_map: Any) -> bool:
        if isinstance(condition, dict) and list(condition) == ["Fn::Equals"]:
            left, right = (parsing.clean_json(v, resources_map) for v in condition["Fn::Equals"])
            return _as_given(left).lower() == _as_given(right).lower()
        return bool(parse_condition(condition, resources_map, condition_map))

    parsing.parse_condition = parse


def _as_given(value: Any) -> str:
    """A resolved parameter value as it would have been given (lists comma-separated)."""
    return ",".join(map(str, value)) if isinstance(value, list) else str(value)


def apply_moto_patch() -> None:
    """Make moto's CloudFormation keep the listener's `ForwardConfig` and target groups'
    attributes, update target groups in place, keep previous values that were defaults, and
    fail (and roll back) an update whose image never starts."""
    from moto.elbv2 import models
    from moto.elbv2.exceptions import InvalidActionTypeError

    _patch_target_groups(models)
    _patch_failing_updates()
    _patch_previous_values()
    _patch_condition_equality()
    _patch_service_load_balancers()
    emulator_resources.patch_load_balancers()
    emulator_resources.patch_task_definitions()
    emulator_resources.patch_autoscaling()
    emulator_resources.patch_conditional_resources()
    emulator_resources.patch_service_networks()

    def convert_and_validate_properties(
        self: Any, properties: dict[str, Any]
    ) -> list[dict[str, Any]]:
        actions: list[dict[str, Any]] = []
        for i, action in enumerate(properties["DefaultActions"]):
            kind = action["Type"]
            if kind == "forward" and "ForwardConfig" in action:
                converted: dict[str, Any] = {
                    "Type": kind,
                    "ForwardConfig": _forward_config(action["ForwardConfig"]),
                }
                if "TargetGroupArn" in action:
                    converted["TargetGroupArn"] = action["TargetGroupArn"]
                actions.append(converted)
            elif kind == "forward":
                actions.append({"Type": kind, "TargetGroupArn": action["TargetGroupArn"]})
            elif kind in models.ALLOWED_ACTIONS:
                actions.append(action)
            else:
                raise InvalidActionTypeError(kind, i + 1)
        return actions

    models.ELBv2Backend.convert_and_validate_properties = convert_and_validate_properties  # type: ignore[method-assign]


def free_port() -> int:
    """A port the kernel considers free right now (moto needs a number, not 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class MotoServer:
    """A running moto server subprocess; `stop()` ends it by PID."""

    process: subprocess.Popen[bytes]
    port: int

    @property
    def endpoint_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def env(self) -> dict[str, str]:
        """Environment that points boto3 (and the `canary` CLI) at this server."""
        return {**EMULATOR_ENV, "AWS_ENDPOINT_URL": self.endpoint_url}

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


def _reachable(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/moto-api/", timeout=1):
            return True
    except urllib.error.HTTPError:
        return True  # it answered, which is all we need
    except OSError:
        return False


def start(*, timeout_s: float = 30.0, attempts: int = 3) -> MotoServer:
    """Start a patched moto server on a free 127.0.0.1 port and wait until it answers."""
    if importlib.util.find_spec("moto") is None:
        raise UsageError(
            "the emulated AWS needs moto[server], which is not installed",
            hint="pip install 'canary-deploy[emulator]'",
        )
    for _ in range(attempts):
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env.update(EMULATOR_ENV)
        process = subprocess.Popen(
            [sys.executable, "-m", "canary_deploy.aws.emulator", str(port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=env,
        )
        server = MotoServer(process, port)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and process.poll() is None:
            if _reachable(server.endpoint_url):
                return server
            time.sleep(0.1)
        # Lost the port race or too slow: stop this one and try another port.
        server.stop()
    raise OperationFailed(
        "could not start the moto server (emulated AWS)",
        hint="install it with `pip install 'canary-deploy[emulator]'` (moto[server])",
    )


@contextmanager
def running() -> Iterator[MotoServer]:
    """A moto server for the duration of the block, always stopped afterwards."""
    server = start()
    try:
        yield server
    finally:
        server.stop()


def _serve(port: int) -> None:
    try:
        from moto import server
    except ModuleNotFoundError:
        raise UsageError("moto[server] is not installed") from None
    apply_moto_patch()
    server.main(["-H", HOST, "-p", str(port)])


if __name__ == "__main__":
    _serve(int(sys.argv[1]))
