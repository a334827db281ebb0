"""Records an image in ECR (moto or real) with a real PutImage call, the way a
registry push ends: an image manifest under a tag. No layers are uploaded:
the local cluster's nodes are simulated and never pull.

    push-image.py --repository api-worker --tag 1.0.0 [--variant 2]

Creates the repository when missing and prints the image digest. A different
--variant gives a different manifest (and digest) for the same tag, which is
how tests move a tag.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys

import boto3
from botocore.exceptions import BotoCoreError, ClientError

MEDIA_TYPE = "application/vnd.docker.distribution.manifest.v2+json"


def manifest(repository: str, tag: str, variant: int) -> str:
    config = hashlib.sha256(f"{repository}:{tag}:{variant}".encode()).hexdigest()
    layer = hashlib.sha256(f"layer:{repository}:{variant}".encode()).hexdigest()
    return json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": MEDIA_TYPE,
            "config": {
                "mediaType": "application/vnd.docker.container.image.v1+json",
                "size": 1469,
                "digest": f"sha256:{config}",
            },
            "layers": [
                {
                    "mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
                    "size": 2811478,
                    "digest": f"sha256:{layer}",
                }
            ],
        },
        separators=(",", ":"),
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repository", required=True)
    parser.add_argument("--tag", required=True)
    parser.add_argument("--variant", type=int, default=1)
    args = parser.parse_args()

    ecr = boto3.client("ecr")
    try:
        try:
            ecr.create_repository(repositoryName=args.repository)
        except ecr.exceptions.RepositoryAlreadyExistsException:
            pass
        body = manifest(args.repository, args.tag, args.variant)
        try:
            result = ecr.put_image(
                repositoryName=args.repository,
                imageTag=args.tag,
                imageManifest=body,
                imageManifestMediaType=MEDIA_TYPE,
            )
            digest = result["image"]["imageId"]["imageDigest"]
        except ecr.exceptions.ImageAlreadyExistsException:
            found = ecr.describe_images(repositoryName=args.repository, imageIds=[{"imageTag": args.tag}])
            digest = found["imageDetails"][0]["imageDigest"]
    except (BotoCoreError, ClientError) as error:
        print(f"push-image: {error}", file=sys.stderr)
        return 1
    print(digest)
    return 0


if __name__ == "__main__":
    sys.exit(main())
