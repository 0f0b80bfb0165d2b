"""The AWS target: a CloudFormation stack of ECS Fargate services behind a weighted ALB."""

from __future__ import annotations

import dataclasses

from canary_deploy.aws.alarms import CloudWatchAlarms
from canary_deploy.aws.change_set import ChangeSetPreview
from canary_deploy.aws.clients import AwsClients
from canary_deploy.aws.errors import ErrorScope, StackNotFound
from canary_deploy.aws.health import TargetHealth
from canary_deploy.aws.images import EcrImages
from canary_deploy.aws.metrics import CloudWatchMetrics
from canary_deploy.aws.outputs import StackOutputs
from canary_deploy.aws.parameters import (
    check_certificate_region,
    check_delete,
    check_log_group_free,
    listener_url,
    network_parameters,
    settings_for,
    stack_parameters,
    template_for,
)
from canary_deploy.aws.promotion import StackWorkload, live_parameters
from canary_deploy.aws.router import AlbRouter, configured_stickiness, to_alb
from canary_deploy.aws.routes import AlbRoutes
from canary_deploy.aws.stack import Stack, StackInfo
from canary_deploy.aws.stack_states import refuse_update, status_note
from canary_deploy.aws.status_rows import role_rows
from canary_deploy.aws.task_config import config_changes
from canary_deploy.aws.workload import EcsWorkload
from canary_deploy.backend import (
    ListenerStatus,
    MetricsSource,
    Progress,
    ReleaseSpec,
    Status,
    TesterRouter,
    TrafficRouter,
    Workload,
)
from canary_deploy.config import Settings
from canary_deploy.errors import CanaryError, NothingToDelete
from canary_deploy.preview import Preview
from canary_deploy.weights import Weights


class AwsTarget:
    """Deploy, inspect and delete the canary stack; weights go through the listener."""

    def __init__(self, clients: AwsClients, settings: Settings) -> None:
        self.name = "aws"
        self._clients = clients
        self._settings = settings
        self._errors = ErrorScope(settings.stack_name, clients.region)
        self._outputs: StackOutputs | None = None
        # Typed as the Protocols (their attributes are invariant); the concrete objects
        # stay reachable for what only AWS offers (stickiness, task definitions, traffic).
        self.alb = AlbRouter(
            clients.elbv2,
            self.outputs,
            self._errors,
            lambda: configured_stickiness(self.stack.require().parameters),
        )
        # Every stack update keeps the listener's live weights (Stack.apply).
        self.stack = Stack(clients.cloudformation, settings.stack_name, self._errors, self.alb)
        self.ecs = EcsWorkload(clients.ecs, self.outputs, self._errors)
        self.health = TargetHealth(clients.elbv2, self.outputs, self._errors)
        self.cloudwatch = CloudWatchMetrics(clients.cloudwatch, self.outputs, self._errors)
        self.router: TrafficRouter = self.alb
        self.workload: Workload = StackWorkload(self.stack, self.ecs, self.alb, self.health)
        self.metrics: MetricsSource = self.cloudwatch
        # Listener rules before the weighted default action (never touched by ModifyListener).
        self.rules = AlbRoutes(clients.elbv2, self.outputs, self._errors)
        self.routes: TesterRouter = self.rules
        # What `[rollout] alarms` names (`rollout.alarms.alarm_source`).
        self.alarms = CloudWatchAlarms(clients.cloudwatch, self._errors)

    @classmethod
    def from_settings(cls, settings: Settings) -> AwsTarget:
        clients = AwsClients.create(
            region=settings.aws.region, profile=settings.aws.profile, stack_name=settings.stack_name
        )
        return cls(clients, settings)

    def outputs(self) -> StackOutputs:
        """The stack's outputs, read once (the stack must exist)."""
        if self._outputs is None:
            info = self.stack.require()
            self._outputs = StackOutputs.parse(info.outputs, self.stack.name)
        return self._outputs

    def deploy(self, spec: ReleaseSpec, progress: Progress) -> None:
        """Create the stack, or update it in place keeping the live weights."""
        current = self.stack.describe()
        self._check_before_change(current)
        self._check_images(spec, current, progress)
        parameters = self._stack_parameters(spec, current, progress)
        self._outputs = None
        self.stack.apply(
            parameters,
            progress,
            template=template_for(self._settings.aws, (spec.image_stable, spec.image_canary)),
        )
        self._outputs = None
        if current is not None:
            # Routes made before the stack had tester groups forward to the judged groups.
            self.rules.move_to_tester_groups(progress)

    def preview(self, spec: ReleaseSpec, progress: Progress) -> Preview:
        """What `deploy(spec)` would change, from a CloudFormation change set of the same
        template and parameters (created, read, deleted); nothing else changes."""
        current = self.stack.describe()
        if current is not None:
            refuse_update(self.stack.name, current.status, self._errors.region)
        self._check_before_change(current)
        self._check_images(spec, current, progress)
        parameters = self._stack_parameters(spec, current, progress)
        changes = ChangeSetPreview(self._clients.cloudformation, self.stack.name, self._errors)
        template = template_for(self._settings.aws, (spec.image_stable, spec.image_canary))
        preview = changes.preview(parameters, current, progress, template=template)
        if current is None:
            return preview
        # The task definitions' resource change does not say what in them changes: we
        # render the environment and secrets, so compare them with what stable runs.
        running = self.ecs.app_settings("stable")
        if running is None:
            return preview
        changed = config_changes(running, self._settings.aws.task_config)
        notes = tuple(f"The app's {change} (every task definition)" for change in changed)
        return dataclasses.replace(preview, notes=(*preview.notes, *notes))

    def _check_before_change(self, current: StackInfo | None) -> None:
        """Refuse what CloudFormation would fail halfway for resources outside the stack:
        a certificate of another region, a log group name taken before a create."""
        check_certificate_region(settings_for(self._settings.aws, current), self._clients.region)
        if current is None and self._clients.logs is not None:
            prefix = f"/ecs/{self.stack.name}"
            with self._errors(f"look up log group {prefix}"):
                found = self._clients.logs.describe_log_groups(logGroupNamePrefix=prefix)
            check_log_group_free(self.stack.name, [g["logGroupName"] for g in found["logGroups"]])

    def _check_images(
        self, spec: ReleaseSpec, current: StackInfo | None, progress: Progress
    ) -> None:
        """Fail before any stack change when an ECR image is missing or built for another
        CPU architecture than the tasks' (`deploy --skip-image-check` skips this)."""
        if not spec.check_images:
            progress.log("Image check skipped (--skip-image-check)")
            return
        # An existing stack keeps its architecture unless the settings name one.
        architecture = settings_for(self._settings.aws, current).cpu_architecture
        images = EcrImages(self._clients.ecr_in, self._errors, architecture)
        images.check((spec.image_stable, spec.image_canary), progress)

    def _stack_parameters(
        self, spec: ReleaseSpec, current: StackInfo | None, progress: Progress
    ) -> dict[str, str | None]:
        """The parameters a deploy of `spec` sends to the stack `current` (None: a new one)."""
        aws = self._settings.aws
        network = network_parameters(self._clients.ec2, self._errors, aws, current, progress)
        stable_weight, canary_weight, baseline_weight = to_alb(spec.weights)
        # Weights and the baseline's task count change by API calls (ModifyListener,
        # UpdateService): an update passes their live values so that it never reverts them.
        live: dict[str, str | None] = {
            "StableWeight": str(stable_weight),
            "CanaryWeight": str(canary_weight),
            "BaselineWeight": str(baseline_weight),
            "DesiredCountBaseline": str(spec.desired_count_baseline),
        }
        if current is not None and current.status != "ROLLBACK_COMPLETE":
            weights = self._live_weights_for_update(current, progress)
            live = live_parameters(
                current, weights, self.ecs, progress, canary_count=spec.desired_count_canary
            )
        return stack_parameters(spec, aws, current, live=live, network=network)

    def _live_weights_for_update(self, current: StackInfo, progress: Progress) -> Weights:
        """The listener's live weights, so a stack update never reverts them."""
        try:
            live = self.router.get_weights()
        except CanaryError as exc:
            fallback = current.weights or self._settings.initial_weights
            progress.log(f"Could not read the live weights ({exc.message}); keeping {fallback}")
            return fallback
        progress.log(f"Keeping the live listener weights {live} in the stack update")
        return live

    def status(self) -> Status:
        """Everything `canary status` shows, read live along the seed's chain."""
        info = self.stack.require()
        notes: list[str] = []
        state_note = status_note(info.name, info.status, self._errors.region)
        if state_note:
            notes.append(state_note)
        try:
            self._outputs = StackOutputs.parse(info.outputs, info.name)
        except CanaryError as exc:
            notes.append(exc.message)
            return Status(self.name, info.name, info.status, None, {}, tuple(notes))
        out = self._outputs
        if set(out.tester_group_arns()) != set(out.groups):
            notes.append(
                "the stack has no tester target groups (created by an older canary-deploy): "
                "new tester routes are refused and older ones are judged; "
                "`canary --target aws deploy` adds them"
            )
        state = self.alb.listener_state()
        listener = None  # a listener that forwards nothing has no split to show: a note
        if state.weights is None:
            notes.append(str(state.problem))
        else:
            listener = ListenerStatus(
                url=listener_url(info.parameters, out.alb_dns),
                weights=state.weights,
                stickiness_seconds=state.stickiness_seconds,
                configured_weights=info.weights,
            )
        roles = role_rows(out, state, self.ecs, self.health, self.cloudwatch, notes)
        return Status(self.name, info.name, info.status, listener, roles, tuple(notes))

    def deployed_spec(self) -> ReleaseSpec | None:
        return None  # the seed's deploy always names both images

    def delete(self, progress: Progress, *, purge: bool = False) -> None:
        """Remove the tool's listener rules, then tear the stack down and wait until it
        is gone."""
        current = self.stack.describe()
        if current is not None:
            check_delete(current)
            self.rules.delete_all(progress)
        try:
            self.stack.delete(progress)
        except StackNotFound as exc:
            raise NothingToDelete(exc.message, hint="check STACK_NAME / AWS_REGION") from None
        self._outputs = None
        if current is not None and current.parameters.get("RetainLogs") == "true":
            group = f"/ecs/{current.name}"
            progress.log(
                f"Kept log group {group} (retain_logs): a new stack named {current.name} "
                f"cannot be created while it exists (aws logs delete-log-group "
                f"--log-group-name {group} once its logs are no longer needed)"
            )
