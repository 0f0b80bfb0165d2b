"""The app's environment variables and secrets: validated, and rendered into the template.

CloudFormation has no map parameter, and no intrinsic function turns one string into a
list of `{Name, Value}` objects: a fixed number of optional "slots" would cap the count and
bloat the template, and JSON in a parameter cannot be split into objects. So the tool
writes the lists into the template body it sends (`render`): the packaged template marks
the places with comment lines, which stay plain YAML comments for cfn-lint and checkov.
The execution role's read access to the secrets is rendered the same way, listing exactly
the named ARNs. Keys are sorted, so the same settings always give the same body (a deploy
that changes nothing is "no changes").
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from canary_deploy.errors import UsageError

ENVIRONMENT_MARK = "# canary-deploy:environment"
SECRETS_MARK = "# canary-deploy:secrets"
STATEMENTS_MARK = "# canary-deploy:secret-statements"
# Set by the template itself (the sample app answers /whoami with it).
RESERVED_NAMES = frozenset({"CANARY_VERSION"})

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_PARTITION_REGION_ACCOUNT = r"arn:aws[a-z-]*:{service}:[a-z0-9-]+:\d{{12}}:"
SECRET_ARN = re.compile(
    _PARTITION_REGION_ACCOUNT.format(service="secretsmanager")
    + r"secret:[A-Za-z0-9/_+=.@-]+(:[^:]*){0,3}$"
)
PARAMETER_ARN = re.compile(
    _PARTITION_REGION_ACCOUNT.format(service="ssm") + r"parameter/[A-Za-z0-9/_.-]+$"
)
# A key's ID, or a Multi-Region key's (mrk- and 32 hex digits).
KMS_KEY_ARN = re.compile(
    _PARTITION_REGION_ACCOUNT.format(service="kms") + r"key/(mrk-)?[a-f0-9-]+$"
)
# Secrets Manager appends "-" and 6 characters to a secret's name in its ARN; a partial
# ARN (without them) of a secret whose own name ends so looks the same.
_FULL_SECRET_NAME = re.compile(r"-[A-Za-z0-9]{6}$")


@dataclass(frozen=True)
class TaskConfig:
    """What every task definition gets besides its image: stable's, the canary's (the
    baseline runs stable's)."""

    environment: Mapping[str, str] = field(default_factory=dict)
    secrets: Mapping[str, str] = field(default_factory=dict)  # name -> secret/parameter ARN
    kms_key_arns: tuple[str, ...] = ()  # customer managed keys of those secrets
    # The ECR repositories of the release's images (ARNs): one in another account or
    # region needs the role's own grant as well as that repository's policy.
    image_repositories: tuple[str, ...] = ()


def name_problem(name: str) -> str | None:
    """Why `name` cannot be a container environment variable, or None."""
    if not _NAME.match(name):
        return f"{name!r} is not a variable name (letters, digits and _, not first a digit)"
    if name in RESERVED_NAMES:
        return f"{name} is set by the stack itself (each version's name)"
    return None


def secret_problem(arn: str) -> str | None:
    """Why `arn` cannot be an ECS secret's `valueFrom` here, or None."""
    if SECRET_ARN.match(arn) or PARAMETER_ARN.match(arn):
        return None
    return (
        f"{arn!r} is not a Secrets Manager secret ARN "
        "(arn:aws:secretsmanager:REGION:ACCOUNT:secret:NAME-AbCdEf[:JSON_KEY::]) nor an SSM "
        "parameter ARN (arn:aws:ssm:REGION:ACCOUNT:parameter/NAME): the execution role is "
        "given read access to exactly these ARNs"
    )


def parse_pairs(values: Iterable[str], flag: str) -> dict[str, str]:
    """`--env A=1 --env B=x=y` as {"A": "1", "B": "x=y"}; a value without `=` is an error,
    and so is a name given twice (which value was meant is a guess).

    >>> parse_pairs(["A=1", "B=x=y", "C="], "--env")
    {'A': '1', 'B': 'x=y', 'C': ''}
    """
    pairs: dict[str, str] = {}
    for value in values:
        name, eq, rest = value.partition("=")
        if not eq or not name:
            raise UsageError(
                f"{flag} {value!r}: expected NAME=VALUE",
                hint=f"e.g. {flag} LOG_LEVEL=info (repeat {flag} for more)",
            )
        if name in pairs:
            raise UsageError(
                f"{flag} {name} is given twice ({name}={pairs[name]!r} and {name}={rest!r})",
                hint=f"give each name once (a {flag} value replaces the one in canary.toml)",
            )
        pairs[name] = rest
    return pairs


def secret_resources(arn: str) -> tuple[str, ...]:
    """The IAM resources that grant reading `arn`: a secret's own ARN without the JSON key
    and version ECS accepts after it, with Secrets Manager's 6-character suffix matched
    when the ARN was given without it; a parameter's ARN as it is. A name ending in "-"
    and 6 characters is either a full ARN or a partial one of such a name (prod-db-backup):
    both are granted.

    >>> secret_resources("arn:aws:secretsmanager:us-east-1:111122223333:secret:db:password::")
    ('arn:aws:secretsmanager:us-east-1:111122223333:secret:db-??????',)
    >>> secret_resources("arn:aws:secretsmanager:us-east-1:111122223333:secret:db-backup")[1]
    'arn:aws:secretsmanager:us-east-1:111122223333:secret:db-backup-??????'
    """
    if not SECRET_ARN.match(arn):
        return (arn,)
    base = ":".join(arn.split(":")[:7])
    partial = f"{base}-??????"
    return (base, partial) if _FULL_SECRET_NAME.search(base) else (partial,)


def config_changes(before: TaskConfig, after: TaskConfig) -> tuple[str, ...]:
    """What a deploy changes in the app's environment and secrets, by name (values are
    not shown: a dry run's output ends up in CI logs).

    >>> config_changes(TaskConfig({"A": "1", "B": "x"}), TaskConfig({"A": "2", "C": "y"}))
    ('environment: A changes, B removed, C added',)
    """

    def diff(old: Mapping[str, str], new: Mapping[str, str]) -> list[str]:
        return [
            f"{name} {'added' if name not in old else 'removed' if name not in new else 'changes'}"
            for name in sorted(set(old) | set(new))
            if old.get(name) != new.get(name)
        ]

    found = (
        ("environment", diff(before.environment, after.environment)),
        ("secrets", diff(before.secrets, after.secrets)),
    )
    return tuple(f"{what}: {', '.join(names)}" for what, names in found if names)


def _quoted(value: str) -> str:
    # A JSON string is a YAML double-quoted scalar: every character survives as it is.
    return json.dumps(value, ensure_ascii=False)


def _environment(config: TaskConfig) -> list[str]:
    return [
        line
        for name in sorted(config.environment)
        for line in (f"- Name: {_quoted(name)}", f"  Value: {_quoted(config.environment[name])}")
    ]


def _secrets(config: TaskConfig) -> list[str]:
    if not config.secrets:
        return []
    lines = ["Secrets:"]
    for name in sorted(config.secrets):
        lines += [f"  - Name: {_quoted(name)}", f"    ValueFrom: {_quoted(config.secrets[name])}"]
    return lines


def _statement(action: str, resources: Iterable[str]) -> list[str]:
    listed = sorted(set(resources))
    if not listed:
        return []
    return [
        "- Effect: Allow",
        f"  Action: {action}",
        f"  Resource: [{', '.join(_quoted(r) for r in listed)}]",
    ]


def _statements(config: TaskConfig) -> list[str]:
    """Read access for the execution role (ECS fetches the secrets before the container
    starts), on exactly the named ARNs. kms:Decrypt only for customer managed keys: a
    secret under the AWS managed key (aws/secretsmanager, aws/ssm) is decrypted by the
    service for any principal allowed to read it, so no key is named by default."""
    arns = list(config.secrets.values())
    return [
        *_statement(
            "secretsmanager:GetSecretValue",
            [r for arn in filter(SECRET_ARN.match, arns) for r in secret_resources(arn)],
        ),
        *_statement("ssm:GetParameters", filter(PARAMETER_ARN.match, arns)),
        *_statement("kms:Decrypt", config.kms_key_arns),
        *_pull_statement(config.image_repositories),
    ]


def _pull_statement(repositories: Iterable[str]) -> list[str]:
    """The image pull on the release's repositories: the packaged statement covers this
    account's and region's only."""
    listed = sorted(set(repositories))
    if not listed:
        return []
    actions = ("ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer")
    return [
        "- Effect: Allow",
        f"  Action: [{', '.join(actions)}]",
        f"  Resource: [{', '.join(_quoted(r) for r in listed)}]",
    ]


def render(template: str, config: TaskConfig) -> str:
    """`template` with the marks replaced by `config`'s lists, at each mark's indent."""
    blocks = {
        ENVIRONMENT_MARK: _environment(config),
        SECRETS_MARK: _secrets(config),
        STATEMENTS_MARK: _statements(config),
    }
    out: list[str] = []
    for line in template.splitlines(keepends=True):
        block = blocks.get(line.strip())
        if block is None:
            out.append(line)
            continue
        indent = line[: len(line) - len(line.lstrip())]
        out += [f"{indent}{rendered}\n" for rendered in block]
    return "".join(out)
