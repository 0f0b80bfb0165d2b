"""`canary --target aws deploy` looks its ECR images up before the stack changes, through
the real CLI against moto's ECR (repositories and manifests pushed with put_image)."""

from __future__ import annotations

import contextlib
import json

import boto3

from tests.aws.conftest import AwsEnv, CliRunner

HOST = "123456789012.dkr.ecr.us-east-1.amazonaws.com"  # moto's account
SINGLE = "application/vnd.docker.distribution.manifest.v2+json"
INDEX = "application/vnd.oci.image.index.v1+json"


def push(aws_env: AwsEnv, name: str, tag: str, *platforms: str, region: str = "us-east-1") -> str:
    """Put an image in moto's ECR (a repository of this test's own): a single manifest, or
    an index of `platforms`."""
    repository = f"{aws_env.stack_name}/{name}"
    ecr = boto3.client("ecr", region_name=region)
    with contextlib.suppress(ecr.exceptions.RepositoryAlreadyExistsException):
        ecr.create_repository(repositoryName=repository)
    if platforms:
        manifest = {"schemaVersion": 2, "mediaType": INDEX, "manifests": [
            {"mediaType": "application/vnd.oci.image.manifest.v1+json", "size": 1,
             "digest": f"sha256:{i:064x}", "platform": {"os": p.split("/")[0],
                                                         "architecture": p.split("/")[1]}}
            for i, p in enumerate(platforms)]}  # fmt: skip
    else:
        manifest = {"schemaVersion": 2, "mediaType": SINGLE, "layers": [],
                    "config": {"mediaType": "application/vnd.docker.container.image.v1+json",
                               "size": 1, "digest": f"sha256:{'c' * 64}"}}  # fmt: skip
    ecr.put_image(
        repositoryName=repository,
        imageManifest=json.dumps(manifest),
        imageTag=tag,
        imageManifestMediaType=INDEX if platforms else SINGLE,
    )
    host = HOST.replace("us-east-1", region)
    return f"{host}/{repository}:{tag}"


def said(text: str) -> str:
    """Output with the console's line wrapping undone."""
    return " ".join(text.split())


def test_a_missing_repository_fails_fast_with_the_push_commands(
    aws_env: AwsEnv, cli: CliRunner
) -> None:
    stable = push(aws_env, "app", "v1")
    missing = f"{aws_env.stack_name}/nope"
    result = cli("deploy", IMAGE_URI_STABLE=stable, IMAGE_URI_CANARY=f"{HOST}/{missing}:v2")
    assert result.exit_code == 1
    assert f"repository {missing} does not exist in account 123456789012" in result.stderr
    assert f"aws ecr create-repository --repository-name {missing}" in result.stderr
    assert f"docker build --platform linux/amd64 -t {HOST}/{missing}:v2 ." in result.stderr
    assert not aws_env.stack_exists()  # nothing was created


def test_a_tag_not_pushed_fails_before_an_update(aws_env: AwsEnv, cli: CliRunner) -> None:
    stable, canary = push(aws_env, "app", "v1"), push(aws_env, "app", "v2")
    assert cli("deploy", IMAGE_URI_STABLE=stable, IMAGE_URI_CANARY=canary).exit_code == 0
    before = aws_env.stack_parameters()
    repository = f"{aws_env.stack_name}/app"
    result = cli("deploy", IMAGE_URI_STABLE=stable, IMAGE_URI_CANARY=f"{HOST}/{repository}:v3")
    assert result.exit_code == 1
    assert f"no tag v3 in repository {repository}" in result.stderr
    assert f"aws ecr describe-images --repository-name {repository}" in result.stderr
    assert aws_env.stack_parameters() == before  # no update was started


def test_an_arm64_only_image_fails_with_exec_format_error_unless_the_check_is_skipped(
    aws_env: AwsEnv, cli: CliRunner
) -> None:
    stable = push(aws_env, "app", "multi", "linux/amd64", "linux/arm64")
    canary = push(aws_env, "app", "laptop", "linux/arm64")
    refused = cli("deploy", IMAGE_URI_STABLE=stable, IMAGE_URI_CANARY=canary)
    assert refused.exit_code == 1
    assert "built for linux/arm64 only, not for linux/amd64" in refused.stderr
    assert "exec format error" in refused.stderr
    assert not aws_env.stack_exists()

    skipped = cli("deploy", "--skip-image-check", IMAGE_URI_STABLE=stable, IMAGE_URI_CANARY=canary)
    assert skipped.exit_code == 0, skipped.stderr
    assert "Image check skipped (--skip-image-check)" in skipped.stderr
    assert aws_env.stack_parameters()["ImageURICanary"] == canary


def test_an_image_in_another_region_is_found_there(aws_env: AwsEnv, cli: CliRunner) -> None:
    canary = push(aws_env, "shared", "v2", region="eu-west-1")
    result = cli("deploy", IMAGE_URI_STABLE=push(aws_env, "app", "v1"), IMAGE_URI_CANARY=canary)
    assert result.exit_code == 0, result.stderr
    # moto has no GetDownloadUrlForLayer: the single image's platform stays unknown.
    assert f"Image {canary} is in ECR (its platform is unknown: ECR gave no download URL" in (
        said(result.stderr)
    )


def test_images_outside_ecr_are_named_once_and_deployed(aws_env: AwsEnv, cli: CliRunner) -> None:
    result = cli("deploy")  # repo/app:v1 and v2: Docker Hub names
    assert result.exit_code == 0, result.stderr
    assert "Not checked (not in a private ECR registry): repo/app:v1, repo/app:v2" in said(
        result.stderr
    )
