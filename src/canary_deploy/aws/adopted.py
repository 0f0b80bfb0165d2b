"""The AWS target on the user's own listener and ECS services (`canary adopt`): the same
router, workload, health, metrics and tester routes as on our stack, handed the adopted
resources instead of stack outputs. No CloudFormation call, ever; nothing is created or
deleted but task definition revisions (a deploy's, a promotion's)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager

from botocore.exceptions import ClientError

from canary_deploy.aws.alarms import CloudWatchAlarms
from canary_deploy.aws.clients import AwsClients
from canary_deploy.aws.errors import ErrorScope, error_code
from canary_deploy.aws.existing import ExistingService
from canary_deploy.aws.health import TargetHealth
from canary_deploy.aws.images import EcrImages
from canary_deploy.aws.metrics import CloudWatchMetrics
from canary_deploy.aws.outputs import StackOutputs
from canary_deploy.aws.revisions import Revisions
from canary_deploy.aws.router import AlbRouter
from canary_deploy.aws.routes import AlbRoutes
from canary_deploy.aws.service_workload import ServicesWorkload
from canary_deploy.aws.status_rows import role_rows
from canary_deploy.aws.workload import EcsWorkload
from canary_deploy.backend import (
    ListenerStatus,
    MetricsSource,
    Progress,
    ReleaseSpec,
    Role,
    Status,
    TesterRouter,
    TrafficRouter,
    Workload,
)
from canary_deploy.config import ENV_VARS, Settings
from canary_deploy.errors import CanaryError, OperationFailed, UsageError
from canary_deploy.preview import Preview, spec_changes
from canary_deploy.routes import RouteMatch, TesterRoute

ADOPTED = "ADOPTED"  # what `status` shows where a stack's status would be
# What AWS says when a resource an adoption names is gone (deleted or renamed outside).
GONE_CODES = {
    "ListenerNotFound", "RuleNotFound", "TargetGroupNotFound", "LoadBalancerNotFound",
    "ServiceNotFoundException", "ServiceNotActiveException", "ClusterNotFoundException",
}  # fmt: skip


class AdoptedErrors(ErrorScope):
    """The error scope of an adopted setup: a resource that is gone is named as the
    team's, with the fix (`canary adopt` again), never as a stack canary could restore."""

    def __call__(self, action: str) -> AbstractContextManager[None]:
        return self._translated(action)

    @contextmanager
    def _translated(self, action: str) -> Iterator[None]:
        try:
            with super().__call__(action):
                yield
        except CanaryError as exc:
            cause = exc.__cause__
            if isinstance(cause, ClientError) and error_code(cause) in GONE_CODES:
                raise OperationFailed(
                    f"could not {action}: {error_code(cause)} (a resource of the adopted "
                    f"setup {self.stack_name} is gone or was renamed)",
                    hint="canary never recreates your resources: fix them, or `canary adopt` "
                    "again with those that carry the traffic now",
                ) from cause
            raise


def outputs_of(existing: ExistingService) -> StackOutputs:
    """The handles every AWS component takes, from the adoption's record."""
    return StackOutputs(
        alb_dns=existing.dns_name,
        listener_arn=existing.listener_arn,
        load_balancer_arn=existing.load_balancer_arn,
        target_group_stable_arn=existing.stable_target_group_arn,
        target_group_canary_arn=existing.canary_target_group_arn,
        cluster_name=existing.cluster,
        service_stable_name=existing.stable_service,
        service_canary_name=existing.canary_service,
        target_group_baseline_arn=existing.baseline_target_group_arn,
        service_baseline_name=existing.baseline_service,
        tester_target_group_stable_arn=existing.tester_stable_target_group_arn,
        tester_target_group_canary_arn=existing.tester_canary_target_group_arn,
        tester_target_group_baseline_arn=existing.tester_baseline_target_group_arn,
        rule_arn=existing.rule_arn,
    )


# [aws] settings an adopted setup uses (the rest configure our stack's template).
_ADOPTED_USES = {"profile", "region", "env", "secrets", "existing"}


def ignored_template_settings(settings: Settings) -> list[str]:
    """The stack template's settings given (flag, environment or canary.toml) although an
    adoption is driven: they configure resources of our stack, none of yours, so they do
    nothing here (env and secrets are refused by deploy instead)."""
    aws = settings.aws
    names = {path: name for name, path in ENV_VARS.items()}
    given = [f"aws.{f}" for f in sorted(aws.model_fields_set - _ADOPTED_USES)]
    if "autoscaling" in aws.model_fields_set:
        given.remove("aws.autoscaling")
        given += [f"aws.autoscaling.{f}" for f in sorted(aws.autoscaling.model_fields_set)]
    return [names.get(path, path) for path in given]


def refuse_delete(existing: ExistingService) -> UsageError:
    """`canary delete` on an adopted setup: nothing of the user's is ever deleted."""
    return UsageError(
        f"{existing.name} is your own service (adopted with `canary adopt`): canary never "
        f"deletes its listener, target groups or services ({existing.stable_service}, "
        f"{existing.canary_service} in cluster {existing.cluster}); nothing was changed",
        hint="to stop driving it, `canary adopt --forget` removes [aws.existing] from "
        "canary.toml (your resources stay as they are)",
    )


class AdoptedRoutes:
    """Tester routes on an adopted listener: as on our stack, when every service has a
    tester target group and the split is the listener's default action."""

    def __init__(self, rules: AlbRoutes, outputs: StackOutputs) -> None:
        self._rules = rules
        self._outputs = outputs

    def list_routes(self) -> list[TesterRoute]:
        return self._rules.list_routes()

    def add_route(self, match: RouteMatch, to: Role) -> TesterRoute:
        if self._outputs.rule_arn:
            raise UsageError(
                "tester routes are listener rules before the weighted action: on an adopted "
                "listener rule they would need priorities before yours, which canary does "
                "not manage",
                hint="adopt the listener (--listener) to use tester routes",
            )
        if to not in self._outputs.tester_group_arns():
            raise UsageError(
                f"the {to} service has no tester target group: a tester route would send "
                "its requests to the group the judge reads",
                hint=f"register the {to} service in a second target group outside the "
                "forward action, then `canary adopt` again",
            )
        return self._rules.add_route(match, to)

    def delete_route(self, route: TesterRoute) -> None:
        self._rules.delete_route(route)


class AdoptedWorkload(ServicesWorkload):
    """`Workload` on adopted services: promotion registers a stable revision with the
    judged image (stable's own task definition, only that image changed)."""

    def __init__(
        self, ecs: EcsWorkload, revisions: Revisions, router: AlbRouter, health: TargetHealth
    ) -> None:
        super().__init__(ecs, router, health)
        self.revisions = revisions

    def start_baseline(self, desired_count: int, progress: Progress) -> None:
        if not self.revisions.outputs().has_baseline:
            raise UsageError(
                "no baseline service was adopted: a rollout with a baseline needs one",
                hint="`canary rollout --no-baseline` (or `[rollout] baseline = false`) judges "
                "the canary against stable; or `canary adopt ... --baseline-service NAME`",
            )
        super().start_baseline(desired_count, progress)

    def promote(self, image: str, progress: Progress) -> None:
        """Stable takes `image`: a new revision of stable's task definition (its family,
        roles, environment, sizes kept; only the serving container's image changed), one
        UpdateService, wait until steady; then all traffic to stable. Idempotent: a stable
        already on `image` is only waited on."""
        arn = self.revisions.register_with_image("stable", image)
        if arn is not None:
            progress.log(f"Promoting: the stable service takes {image} ({arn.rsplit('/', 1)[-1]})")
            self.ecs.roll_to("stable", arn)
        self.all_to_stable(image, progress)


class AdoptedTarget:
    """Drive the user's listener and services; deploy changes the canary's image only."""

    def __init__(self, clients: AwsClients, settings: Settings, existing: ExistingService) -> None:
        self.name = "aws"
        self.existing = existing
        self._settings = settings
        self._clients = clients
        self._out = outputs_of(existing)
        self._errors = AdoptedErrors(existing.name, clients.region)
        self.alb = AlbRouter(
            clients.elbv2, self.outputs, self._errors, lambda: existing.stickiness_seconds
        )
        self.ecs = EcsWorkload(clients.ecs, self.outputs, self._errors)
        self.revisions = Revisions(clients.ecs, self.outputs, self._errors)
        self.health = TargetHealth(clients.elbv2, self.outputs, self._errors)
        self.cloudwatch = CloudWatchMetrics(clients.cloudwatch, self.outputs, self._errors)
        self.rules = AlbRoutes(clients.elbv2, self.outputs, self._errors)
        self.router: TrafficRouter = self.alb
        self.workload: Workload = AdoptedWorkload(self.ecs, self.revisions, self.alb, self.health)
        self.metrics: MetricsSource = self.cloudwatch
        self.routes: TesterRouter = AdoptedRoutes(self.rules, self._out)
        self.alarms = CloudWatchAlarms(clients.cloudwatch, self._errors)

    @classmethod
    def from_settings(cls, settings: Settings, existing: ExistingService) -> AdoptedTarget:
        clients = AwsClients.create(
            region=settings.aws.region, profile=settings.aws.profile, stack_name=existing.name
        )
        return cls(clients, settings, existing)

    def outputs(self) -> StackOutputs:
        return self._out

    def deploy(self, spec: ReleaseSpec, progress: Progress) -> None:
        """The canary service takes `spec.image_canary` (a new revision of its task
        definition, only the image changed) at its live task count (DESIRED_COUNT_CANARY
        when it has none). Stable changes only by promotion; weights stay as they are."""
        self._refuse_stable_change(spec)
        self._check_image(spec, progress)
        arn = self.revisions.register_with_image("canary", spec.image_canary)
        service = self.ecs.describe_services().get("canary")
        count = service.desired if service is not None and service.desired else None
        if arn is None and count is not None:
            progress.log(f"No changes: the canary already runs {spec.image_canary}")
            return
        self._update_canary(arn, count or spec.desired_count_canary, progress)

    def _refuse_stable_change(self, spec: ReleaseSpec) -> None:
        aws = self._settings.aws
        if aws.env or aws.secrets:
            raise UsageError(
                "on your own service the task definitions' environment and secrets are "
                "yours: canary deploy changes only the canary's image",
                hint="set them in your task definition (the canary's revision copies it); "
                "drop --env/--secret and [aws] env/secrets",
            )
        stable = self.revisions.image("stable")
        if spec.image_stable != stable:
            raise UsageError(
                f"the stable service runs {stable}, not {spec.image_stable}: on your own "
                "service canary changes stable only by promoting a judged canary",
                hint="leave IMAGE_URI_STABLE / --image-stable unset (the canary image is "
                "what deploy takes), then `canary rollout` (or `canary promote --full`)",
            )

    def preview(self, spec: ReleaseSpec, progress: Progress) -> Preview:
        """What `deploy(spec)` would change: the canary's image and task count (a new
        revision of its task definition, one UpdateService); nothing is registered."""
        self._refuse_stable_change(spec)
        self._check_image(spec, progress)
        current = self.deployed_spec()
        changes = tuple(c for c in spec_changes(current, spec) if c.name == "image_canary")
        family = self.revisions.current("canary")[0].get("family", "?")
        notes = (
            f"a new revision of task definition family {family} with the canary image, then "
            f"UpdateService of {self._out.service_canary_name}"
            if changes
            else "the canary already runs this image: no revision is registered",
            "your listener, target groups and stable service are not changed",
        )
        return Preview("aws", self.existing.name, "update", changes, resources=None, notes=notes)

    def _check_image(self, spec: ReleaseSpec, progress: Progress) -> None:
        """The canary image exists in ECR and is built for the canary's CPU architecture
        (`deploy --skip-image-check` skips this), before anything is registered."""
        if not spec.check_images:
            progress.log("Image check skipped (--skip-image-check)")
            return
        images = EcrImages(
            self._clients.ecr_in, self._errors, self.revisions.cpu_architecture("canary")
        )
        images.check((spec.image_canary,), progress)

    def _update_canary(self, arn: str | None, count: int, progress: Progress) -> None:
        deployment = self.ecs.roll_to("canary", arn, count)
        shown = "its task definition" if arn is None else arn.rsplit("/", 1)[-1]
        progress.log(f"Canary service {self._out.service_canary_name}: {shown}, {count} task(s)")
        self.ecs.wait_deployments({"canary": deployment}, progress)

    def status(self) -> Status:
        """The adopted listener, services and groups, read live."""
        out = self._out
        where = (out.rule_arn or out.listener_arn).split(":", 5)[-1]
        notes = [
            f"your own service (`canary adopt`): {where} in cluster {out.cluster_name}; canary "
            "changes its weights and task definition revisions, never creates or deletes it"
        ]
        if out.rule_arn:
            conditions = self.existing.rule_conditions or "as adopted"
            notes.append(
                f"the split is a listener rule's forward: only requests matching {conditions} "
                "take it; the listener's default action is not canary's"
            )
        state = self.alb.listener_state()
        listener = None
        if state.weights is None:
            notes.append(str(state.problem))
        else:
            listener = ListenerStatus(
                url=self.existing.url,
                weights=state.weights,
                stickiness_seconds=state.stickiness_seconds,
            )
        roles = role_rows(out, state, self.ecs, self.health, self.cloudwatch, notes)
        return Status(self.name, self.existing.name, ADOPTED, listener, roles, tuple(notes))

    def deployed_spec(self) -> ReleaseSpec | None:
        """What runs now: a deploy that names no stable image keeps stable's."""
        services = self.ecs.describe_services()
        return ReleaseSpec(
            image_stable=self.revisions.image("stable"),
            image_canary=self.revisions.image("canary"),
            desired_count_stable=services["stable"].desired if "stable" in services else 0,
            desired_count_canary=services["canary"].desired if "canary" in services else 0,
            container_port=self._settings.container_port,
            weights=self._settings.initial_weights,
        )

    def delete(self, progress: Progress, *, purge: bool = False) -> None:
        """Refused: canary never deletes the user's resources."""
        raise refuse_delete(self.existing)
