"""Before a stack changes: each ECR image the tasks will pull exists, built for the CPU
architecture they run on (otherwise the deploy ends in ROLLBACK_COMPLETE minutes later)."""

from __future__ import annotations

import hashlib
import json
import re
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal

from botocore.exceptions import ClientError

from canary_deploy.aws.errors import ACCESS_DENIED_CODES, ErrorScope, error_code
from canary_deploy.backend import Progress
from canary_deploy.errors import OperationFailed, UsageError

# The task definitions' `RuntimePlatform.CpuArchitecture` → the platform docker builds for.
PLATFORMS = {"X86_64": "linux/amd64", "ARM64": "linux/arm64"}
# Manifests that list one image per platform (`docker buildx`, the containerd image store).
INDEX_MEDIA_TYPES = (
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
)
# A single image's manifest: its config blob says the platform.
SINGLE_MEDIA_TYPES = (
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
)
CONFIG_LIMIT = 1 << 20  # an image config is a few KiB; never download more than this
FETCH_TIMEOUT_S = 10.0
SKIP_HINT = "or pass --skip-image-check to deploy without this check"

# Docker's reference grammar (distribution/reference): anything else ECS cannot pull
# ("invalid reference format"). The first component is a registry when it has a dot.
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_HOST_PART = r"[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?"
REFERENCE = re.compile(
    rf"^(?:(?P<registry>{_HOST_PART}(?:\.{_HOST_PART})+(?::[0-9]+)?|localhost(?::[0-9]+)?)/)?"
    rf"(?P<repository>{_COMPONENT}(?:/{_COMPONENT})*)"
    r"(?::(?P<tag>[\w][\w.-]{0,127}))?(?:@(?P<digest>sha256:[0-9a-f]{64}))?$"
)
ECR_REGISTRY = re.compile(
    r"^(?P<account>[0-9]{12})\.dkr\.ecr(?:-fips)?\.(?P<region>[a-z]{2}(?:-[a-z]+)+-[0-9])"
    r"\.amazonaws\.com(?:\.cn)?$"
)


@dataclass(frozen=True)
class EcrImage:
    """An image in a private ECR registry: `<account>.dkr.ecr.<region>.amazonaws.com/repo:tag`
    (or `@sha256:...`); no tag means `latest`, as for docker."""

    uri: str
    registry: str
    account: str
    region: str
    repository: str
    tag: str
    digest: str | None = None

    @property
    def image_id(self) -> dict[str, str]:
        """ECR's name for the image: the digest when the URI pins one, else the tag."""
        return {"imageDigest": self.digest} if self.digest else {"imageTag": self.tag}

    @property
    def repository_arn(self) -> str:
        """The repository's ARN (what an IAM policy grants the pull on).

        >>> parse_image("111122223333.dkr.ecr.eu-west-1.amazonaws.com/dev/app:v1").repository_arn
        'arn:aws:ecr:eu-west-1:111122223333:repository/dev/app'
        """
        partition = "aws-cn" if self.region.startswith("cn-") else "aws"
        if self.region.startswith("us-gov-"):
            partition = "aws-us-gov"
        return f"arn:{partition}:ecr:{self.region}:{self.account}:repository/{self.repository}"

    @property
    def tagged(self) -> str:
        """The URI `docker push` takes (a digest cannot be pushed to)."""
        return f"{self.registry}/{self.repository}:{self.tag}"


def parse_image(uri: str) -> EcrImage | None:
    """The ECR image `uri` names, None for an image elsewhere (Docker Hub, public.ecr.aws,
    ghcr.io), or a UsageError for a URI no registry would accept.

    >>> parse_image("111122223333.dkr.ecr.eu-west-1.amazonaws.com/dev/app:v1").repository
    'dev/app'
    >>> parse_image("111122223333.dkr.ecr.eu-west-1.amazonaws.com/app").tag
    'latest'
    >>> parse_image("public.ecr.aws/nginx/nginx:1.27") is None
    True
    """
    found = REFERENCE.match(uri)
    if found is None:
        raise UsageError(
            f"{uri!r} is not an image reference ECS can pull (it would fail with "
            "'invalid reference format')",
            hint="expected [registry/]repository[:tag][@sha256:digest], repository in "
            f"lower case, no spaces or scheme; {SKIP_HINT}",
        )
    registry = found["registry"] or ""
    if ".dkr.ecr" not in registry:
        return None
    ecr = ECR_REGISTRY.match(registry)
    if ecr is None:
        raise UsageError(
            f"{registry!r} in {uri!r} is not an ECR registry host",
            hint="expected <12-digit account>.dkr.ecr.<region>.amazonaws.com/repository:tag "
            "(the repositoryUri `aws ecr describe-repositories` prints)",
        )
    return EcrImage(
        uri=uri,
        registry=registry,
        account=ecr["account"],
        region=ecr["region"],
        repository=found["repository"],
        tag=found["tag"] or "latest",
        digest=found["digest"],
    )


def platforms_of(manifest: str) -> set[str] | None:
    """The `os/architecture` pairs an image index lists; None for a single image's
    manifest (its architecture is in the config blob, which only a download reads).
    Attestations (`unknown/unknown`, from buildx) are not platforms.

    >>> sorted(platforms_of('{"manifests": [{"platform": {"os": "linux", '
    ...     '"architecture": "arm64", "variant": "v8"}}, {"platform": {"os": "unknown", '
    ...     '"architecture": "unknown"}}]}'))
    ['linux/arm64']
    >>> platforms_of('{"config": {}, "layers": []}') is None
    True
    """
    doc = json.loads(manifest)
    if "manifests" not in doc:
        return None
    return {
        f"{p.get('os')}/{p.get('architecture')}"
        for m in doc["manifests"]
        if (p := m.get("platform")) and p.get("architecture") != "unknown"
    }


Problem = Literal["no repository", "no image", "no digest", "platform"]


@dataclass(frozen=True)
class ImageProblem:
    """Why one ECR image cannot run: `kind`, and the words for the operator."""

    image: EcrImage
    kind: Problem
    detail: str


def push_hint(problems: Iterable[ImageProblem], platform: str) -> str:
    """The commands that put the images where their URIs say, built for `platform`."""
    found = list(problems)
    lines = [
        f"aws ecr create-repository --repository-name {repository} --region {region}"
        for repository, region in dict.fromkeys(
            (p.image.repository, p.image.region) for p in found if p.kind == "no repository"
        )
    ]
    pushed = [p.image for p in found if p.kind != "no digest"]
    for registry, region in dict.fromkeys((i.registry, i.region) for i in pushed):
        lines.append(
            f"aws ecr get-login-password --region {region} | docker login --username AWS "
            f"--password-stdin {registry}"
        )
    for tagged in dict.fromkeys(i.tagged for i in pushed):
        lines += [f"docker build --platform {platform} -t {tagged} .", f"docker push {tagged}"]
    hint = f"push them (for {platform}):\n  " + "\n  ".join(lines) if lines else ""
    listed = dict.fromkeys((p.image.repository, p.image.region) for p in found)
    listing = "; ".join(
        f"`aws ecr describe-images --repository-name {r} --region {g}`" for r, g in listed
    )
    if any(p.kind in ("no image", "no digest") for p in found):
        hint = f"check the tag or digest ({listing} lists what is there)" + (
            f", or {hint}" if hint else ""
        )
    return f"{hint}\n{SKIP_HINT}"


class Unreadable(Exception):
    """The image's platform could not be read (the message says why); not a failure."""


def fetch_blob(url: str) -> bytes:
    """A config blob from the pre-signed HTTPS URL ECR gives for it (at most 1 MiB)."""
    if not url.startswith("https://"):
        raise Unreadable("ECR gave no HTTPS download URL")
    try:
        with urllib.request.urlopen(url, timeout=FETCH_TIMEOUT_S) as response:
            blob: bytes = response.read(CONFIG_LIMIT + 1)
    except OSError as exc:
        raise Unreadable(f"downloading its config blob failed: {exc}") from exc
    return blob


def config_platform(blob: bytes, digest: str) -> str:
    """`os/architecture` from an image's config blob, checked against its digest.

    >>> blob = b'{"architecture": "arm64", "os": "linux", "variant": "v8"}'
    >>> config_platform(blob, "sha256:" + hashlib.sha256(blob).hexdigest())
    'linux/arm64'
    """
    if len(blob) > CONFIG_LIMIT or f"sha256:{hashlib.sha256(blob).hexdigest()}" != digest:
        raise Unreadable("its config blob does not match its digest")
    try:
        doc = json.loads(blob)
        return f"{doc['os']}/{doc['architecture']}"
    except (ValueError, KeyError, TypeError) as exc:
        raise Unreadable("its config blob names no os/architecture") from exc


class ImageMissing(OperationFailed):
    """An ECR image a deploy names is not there (or not for the tasks' architecture)."""

    def __init__(self, problems: list[ImageProblem], platform: str) -> None:
        lines = "\n".join(f"  {p.image.uri}: {p.detail}" for p in problems)
        super().__init__(
            f"the deploy would fail: {len(problems)} image(s) cannot run on the tasks "
            f"({platform}):\n{lines}",
            hint=push_hint(problems, platform),
        )
        self.problems = problems


class EcrImages:
    """Looks the deploy's ECR images up (DescribeImages), and reads the platforms they are
    built for (BatchGetImage; for a single-platform image, its config blob)."""

    def __init__(
        self,
        ecr_in: Callable[[str], Any],
        errors: ErrorScope,
        cpu_architecture: str,
        *,
        fetch: Callable[[str], bytes] | None = None,
    ) -> None:
        self._ecr_in = ecr_in  # region -> ECR client (the image's registry may be elsewhere)
        self._errors = errors
        self._fetch = fetch or fetch_blob
        self.platform = PLATFORMS.get(cpu_architecture, PLATFORMS["X86_64"])
        self._architecture = cpu_architecture

    def check(self, uris: Iterable[str], progress: Progress) -> None:
        """Raise ImageMissing naming every ECR image that is absent or built for another
        architecture; images outside ECR are named in one line and not checked."""
        elsewhere: list[str] = []
        problems: list[ImageProblem] = []
        for uri in dict.fromkeys(uris):
            image = parse_image(uri)
            if image is None:
                elsewhere.append(uri)
                continue
            problem = self._problem(image, progress)
            if problem is not None:
                problems.append(problem)
        if elsewhere:
            progress.log(
                f"Not checked (not in a private ECR registry): {', '.join(elsewhere)}; "
                f"the tasks pull them for {self.platform}"
            )
        if problems:
            raise ImageMissing(problems, self.platform)

    def _problem(self, image: EcrImage, progress: Progress) -> ImageProblem | None:
        """Why `image` cannot run here; None when it can, or when that is unknowable."""
        ecr = self._ecr_in(image.region)
        try:
            with self._errors(f"look up image {image.uri}"):
                try:
                    details = ecr.describe_images(
                        registryId=image.account,
                        repositoryName=image.repository,
                        imageIds=[image.image_id],
                    )["imageDetails"]
                except ClientError as exc:
                    return self._lookup_failed(image, exc, progress)
                media_type = details[0].get("imageManifestMediaType", "") if details else ""
                platforms = self._platforms(ecr, image, media_type)
        except OperationFailed as exc:
            progress.log(f"Could not check image {image.uri} ({exc.message}); deploying anyway")
            return None
        except Unreadable as exc:
            progress.log(f"Image {image.uri} is in ECR (its platform is unknown: {exc})")
            return None
        progress.log(f"Image {image.uri} is in ECR, built for {', '.join(sorted(platforms))}")
        if self.platform in platforms:
            return None
        return ImageProblem(
            image,
            "platform",
            f"built for {', '.join(sorted(platforms))} only, not for {self.platform} "
            f"(cpu_architecture {self._architecture}): its tasks would stop with "
            "'exec format error'",
        )

    def _platforms(self, ecr: Any, image: EcrImage, media_type: str) -> set[str]:
        """The `os/architecture` pairs the image runs on: an index lists them; a single
        image's config blob says it (one more call, and a download of a few KiB)."""
        index = media_type in INDEX_MEDIA_TYPES
        found = ecr.batch_get_image(
            registryId=image.account,
            repositoryName=image.repository,
            imageIds=[image.image_id],
            acceptedMediaTypes=[media_type] if media_type else list(SINGLE_MEDIA_TYPES),
        )["images"]
        if not found:
            raise Unreadable("BatchGetImage returned no manifest")
        manifest = json.loads(found[0]["imageManifest"])
        if index:
            platforms = platforms_of(found[0]["imageManifest"]) or set()
            if not platforms:
                raise Unreadable("its index names no platform")
            return platforms
        config = manifest.get("config") or {}
        if not config.get("digest") or int(config.get("size", 0)) > CONFIG_LIMIT:
            raise Unreadable("its manifest names no config blob of at most 1 MiB")
        try:
            url = ecr.get_download_url_for_layer(
                registryId=image.account,
                repositoryName=image.repository,
                layerDigest=config["digest"],
            )["downloadUrl"]
        except ClientError as exc:
            raise Unreadable(
                f"ECR gave no download URL for its config blob ({error_code(exc)})"
            ) from exc
        return {config_platform(self._fetch(url), config["digest"])}

    def _lookup_failed(
        self, image: EcrImage, exc: ClientError, progress: Progress
    ) -> ImageProblem | None:
        code = error_code(exc)
        where = f"in account {image.account}, region {image.region}"
        if code == "RepositoryNotFoundException":
            return ImageProblem(
                image,
                "no repository",
                f"repository {image.repository} does not exist {where} (a pull-through "
                "cache repository is only created by the first pull: --skip-image-check)",
            )
        if code == "ImageNotFoundException":
            what = f"digest {image.digest}" if image.digest else f"tag {image.tag}"
            kind: Problem = "no digest" if image.digest else "no image"
            return ImageProblem(image, kind, f"no {what} in repository {image.repository} {where}")
        if code in ACCESS_DENIED_CODES:
            progress.log(
                f"Could not check image {image.uri}: access denied to ecr:DescribeImages "
                f"{where}. Deploying anyway; if the repository is in another account, its "
                "repository policy must let this account's task execution role pull "
                "(ecr:BatchGetImage, ecr:GetDownloadUrlForLayer, "
                "ecr:BatchCheckLayerAvailability), or the tasks will not start"
            )
            return None
        raise exc  # translated by the error scope
