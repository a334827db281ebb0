"""Records an image in ECR (moto or real) with a real PutImage call, the way a
registry push ends: an image manifest under a tag. No layers are uploaded:
the local cluster's nodes are simulated and never pull.

    push-image.py --repository api-worker --tag 1.0.0 [--variant 2]
    push-image.py --repository api-worker --tag 1.0.0 --manifest FILE

Creates the repository when missing and prints the image digest. A different
--variant gives a different manifest (and digest) for the same tag, which is
how tests move a tag. --manifest records a real image's manifest, byte for
byte as a registry serves it (tests/images/test.sh: the image built here and
pushed to the local OCI registry), so ECR's digest is the registry's digest;
its media type is the manifest's own mediaType, and its digest (the sha256 of
the bytes) is given as PutImage's imageDigest.
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
    parser.add_argument("--manifest", help="a manifest file, recorded as is")
    args = parser.parse_args()

    ecr = boto3.client("ecr")
    try:
        try:
            ecr.create_repository(repositoryName=args.repository)
        except ecr.exceptions.RepositoryAlreadyExistsException:
            pass
        if args.manifest:
            # Decoded as UTF-8 and sent unchanged: the digest is of these bytes.
            with open(args.manifest, "rb") as file:
                body = file.read().decode("utf-8")
            media_type = json.loads(body).get("mediaType", MEDIA_TYPE)
        else:
            body = manifest(args.repository, args.tag, args.variant)
            media_type = MEDIA_TYPE
        request = {
            "repositoryName": args.repository,
            "imageTag": args.tag,
            "imageManifest": body,
            "imageManifestMediaType": media_type,
        }
        if args.manifest:
            # The digest of a manifest is the sha256 of its bytes: ECR checks
            # a given imageDigest against them; moto, which would otherwise
            # hash the layer digests, records it as given.
            request["imageDigest"] = "sha256:" + hashlib.sha256(body.encode("utf-8")).hexdigest()
        try:
            result = ecr.put_image(**request)
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
