"""The image check before a deploy, against a stubbed ECR: what a user typing an image
URI, pushing for the wrong CPU or using another account's registry sees."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest

from canary_deploy.aws.images import EcrImages, ImageMissing, parse_image
from canary_deploy.errors import UsageError
from tests.aws.stubs import ERRORS, RecordingProgress, stubbed

ACCOUNT = "111122223333"
HOST = f"{ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com"
INDEX = "application/vnd.oci.image.index.v1+json"
SINGLE = "application/vnd.docker.distribution.manifest.v2+json"


def index_of(*platforms: str) -> str:
    """An image index as `docker buildx` pushes it, with an attestation manifest."""
    manifests = [
        {"platform": {"os": p.split("/")[0], "architecture": p.split("/")[1]}}
        for p in (*platforms, "unknown/unknown")
    ]
    return json.dumps({"schemaVersion": 2, "mediaType": INDEX, "manifests": manifests})


def details(media_type: str) -> dict[str, Any]:
    return {
        "imageDetails": [
            {"repositoryName": "dev/app", "imageDigest": "sha256:" + "a" * 64,
             "imageManifestMediaType": media_type}
        ]
    }  # fmt: skip


def test_ecr_uris_are_parsed_and_other_registries_are_not_checked() -> None:
    image = parse_image(f"{HOST}/dev/app:v1")
    assert image is not None
    assert (image.account, image.region, image.repository, image.tag) == (
        ACCOUNT, "us-east-1", "dev/app", "v1",
    )  # fmt: skip
    pinned = parse_image(f"{HOST}/dev/app@sha256:{'b' * 64}")
    assert pinned is not None and pinned.image_id == {"imageDigest": f"sha256:{'b' * 64}"}
    for elsewhere in ("repo/app:v1", "nginx", "public.ecr.aws/nginx/nginx:1.27",
                      "ghcr.io/org/app:v2", "localhost:5000/app"):  # fmt: skip
        assert parse_image(elsewhere) is None


@pytest.mark.parametrize(
    "typo",
    [
        f"{HOST}/Dev/App:v1",  # upper case
        f"https://{HOST}/dev/app:v1",  # a scheme
        f"{HOST}/dev/app:v1 ",  # a trailing space
        f"{HOST}/dev/app:",  # an empty tag
        f"{HOST}/dev/app@sha256:123",  # a short digest
    ],
)
def test_a_malformed_image_reference_is_refused_before_anything_is_called(typo: str) -> None:
    with pytest.raises(UsageError) as exc:
        parse_image(typo)
    assert "invalid reference format" in exc.value.message


def test_a_mistyped_ecr_host_is_named() -> None:
    with pytest.raises(UsageError) as exc:
        parse_image("11112222333.dkr.ecr.us-east-1.amazonaws.com/dev/app:v1")
    assert "not an ECR registry host" in exc.value.message
    assert exc.value.hint is not None and "12-digit account" in exc.value.hint


def test_missing_repository_and_tag_fail_with_the_push_commands() -> None:
    ecr, stub = stubbed("ecr")
    stub.add_client_error("describe_images", "RepositoryNotFoundException", "no repository")
    stub.add_client_error("describe_images", "ImageNotFoundException", "no image")
    with stub, pytest.raises(ImageMissing) as exc:
        EcrImages(lambda _: ecr, ERRORS, "X86_64").check(
            [f"{HOST}/dev/new:v1", f"{HOST}/dev/app:v9"], RecordingProgress()
        )
    message, hint = exc.value.message, exc.value.hint or ""
    assert "repository dev/new does not exist in account 111122223333" in message
    assert "no tag v9 in repository dev/app" in message
    assert "aws ecr create-repository --repository-name dev/new --region us-east-1" in hint
    assert f"docker build --platform linux/amd64 -t {HOST}/dev/app:v9 ." in hint
    assert f"docker push {HOST}/dev/new:v1" in hint
    assert hint.count("docker login") == 1  # one registry, one login
    assert "--skip-image-check" in hint


def test_an_image_in_another_region_and_account_is_looked_up_there() -> None:
    here, _ = stubbed("ecr")
    there, stub = stubbed("ecr")
    uri = "444455556666.dkr.ecr.eu-west-1.amazonaws.com/shared/app:v1"
    stub.add_response(
        "describe_images",
        details(INDEX),
        {"registryId": "444455556666", "repositoryName": "shared/app",
         "imageIds": [{"imageTag": "v1"}]},
    )  # fmt: skip
    stub.add_response(
        "batch_get_image",
        {"images": [{"imageManifest": index_of("linux/amd64"), "imageManifestMediaType": INDEX}]},
        {"registryId": "444455556666", "repositoryName": "shared/app",
         "imageIds": [{"imageTag": "v1"}], "acceptedMediaTypes": [INDEX]},
    )  # fmt: skip
    clients = {"us-east-1": here, "eu-west-1": there}
    progress = RecordingProgress()
    with stub:
        EcrImages(clients.__getitem__, ERRORS, "X86_64").check([uri, uri], progress)
    stub.assert_no_pending_responses()  # looked up once, in eu-west-1
    assert progress.lines == [f"Image {uri} is in ECR, built for linux/amd64"]


def test_access_denied_to_a_cross_account_repository_is_a_hint_not_a_failure() -> None:
    ecr, stub = stubbed("ecr")
    stub.add_client_error("describe_images", "AccessDeniedException", "not authorized")
    progress = RecordingProgress()
    with stub:
        EcrImages(lambda _: ecr, ERRORS, "X86_64").check(
            ["444455556666.dkr.ecr.us-east-1.amazonaws.com/shared/app:v1"], progress
        )
    assert "access denied" in progress.lines[0]
    assert "repository policy" in progress.lines[0]
    assert "ecr:BatchGetImage" in progress.lines[0]


@pytest.mark.parametrize(
    ("architecture", "platforms", "fails"),
    [
        ("X86_64", ("linux/arm64",), True),  # built on an ARM laptop without --platform
        ("X86_64", ("linux/amd64", "linux/arm64"), False),
        ("ARM64", ("linux/amd64",), True),
        ("ARM64", ("linux/arm64",), False),
    ],
)
def test_an_image_index_without_the_tasks_platform_fails_with_exec_format_error(
    architecture: str, platforms: tuple[str, ...], fails: bool
) -> None:
    ecr, stub = stubbed("ecr")
    stub.add_response("describe_images", details(INDEX))
    stub.add_response(
        "batch_get_image",
        {"images": [{"imageManifest": index_of(*platforms), "imageManifestMediaType": INDEX}]},
    )
    images = EcrImages(lambda _: ecr, ERRORS, architecture)
    with stub:
        if not fails:
            images.check([f"{HOST}/dev/app:v1"], RecordingProgress())
            return
        with pytest.raises(ImageMissing) as exc:
            images.check([f"{HOST}/dev/app:v1"], RecordingProgress())
    assert "exec format error" in exc.value.message
    assert f"not for {images.platform}" in exc.value.message
    assert f"docker build --platform {images.platform}" in (exc.value.hint or "")


def single_image(stub: Any, config: bytes) -> str:
    """Stub the calls that read a single-platform image's config blob; its URL."""
    digest = f"sha256:{hashlib.sha256(config).hexdigest()}"
    manifest = {"schemaVersion": 2, "mediaType": SINGLE, "layers": [],
                "config": {"mediaType": "application/vnd.docker.container.image.v1+json",
                           "size": len(config), "digest": digest}}  # fmt: skip
    stub.add_response("describe_images", details(SINGLE))
    stub.add_response(
        "batch_get_image",
        {"images": [{"imageManifest": json.dumps(manifest), "imageManifestMediaType": SINGLE}]},
        {"registryId": ACCOUNT, "repositoryName": "dev/app", "imageIds": [{"imageTag": "v1"}],
         "acceptedMediaTypes": [SINGLE]},
    )  # fmt: skip
    url = "https://prod-us-east-1-starport-layer-bucket.s3.amazonaws.com/config?sig=x"
    stub.add_response(
        "get_download_url_for_layer",
        {"downloadUrl": url, "layerDigest": digest},
        {"registryId": ACCOUNT, "repositoryName": "dev/app", "layerDigest": digest},
    )
    return url


def test_a_single_arm64_image_fails_from_its_config_blob() -> None:
    # `docker build` on Apple silicon without --platform, then `docker push`.
    config = b'{"architecture": "arm64", "os": "linux", "variant": "v8", "rootfs": {}}'
    ecr, stub = stubbed("ecr")
    url = single_image(stub, config)
    fetched: list[str] = []

    def fetch(u: str) -> bytes:
        fetched.append(u)
        return config

    with stub, pytest.raises(ImageMissing) as exc:
        EcrImages(lambda _: ecr, ERRORS, "X86_64", fetch=fetch).check(
            [f"{HOST}/dev/app:v1"], RecordingProgress()
        )
    assert fetched == [url]
    assert "built for linux/arm64 only, not for linux/amd64" in exc.value.message
    assert "exec format error" in exc.value.message


def test_a_single_image_for_the_tasks_platform_passes() -> None:
    config = b'{"architecture": "amd64", "os": "linux"}'
    ecr, stub = stubbed("ecr")
    single_image(stub, config)
    progress = RecordingProgress()
    with stub:
        EcrImages(lambda _: ecr, ERRORS, "X86_64", fetch=lambda _: config).check(
            [f"{HOST}/dev/app:v1"], progress
        )
    assert progress.lines == [f"Image {HOST}/dev/app:v1 is in ECR, built for linux/amd64"]


def test_a_config_blob_that_cannot_be_read_leaves_the_platform_unknown() -> None:
    ecr, stub = stubbed("ecr")
    single_image(stub, b'{"architecture": "amd64", "os": "linux"}')
    progress = RecordingProgress()
    with stub:  # a blob that does not match its digest (a proxy's error page, say)
        EcrImages(lambda _: ecr, ERRORS, "X86_64", fetch=lambda _: b"<html>").check(
            [f"{HOST}/dev/app:v1"], progress
        )
    assert progress.lines == [
        f"Image {HOST}/dev/app:v1 is in ECR (its platform is unknown: its config blob "
        "does not match its digest)"
    ]


def test_images_outside_ecr_are_named_in_one_line() -> None:
    progress = RecordingProgress()
    EcrImages(lambda _: None, ERRORS, "X86_64").check(["repo/app:v1", "repo/app:v2"], progress)
    assert progress.lines == [
        "Not checked (not in a private ECR registry): repo/app:v1, repo/app:v2; "
        "the tasks pull them for linux/amd64"
    ]
