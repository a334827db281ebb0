data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}

data "aws_iam_policy_document" "key" {
  # checkov:skip=CKV_AWS_109:KMS key policies must use Resource "*" (the key itself); access is delegated to this account's IAM
  # checkov:skip=CKV_AWS_111:KMS key policies must use Resource "*" (the key itself); access is delegated to this account's IAM
  # checkov:skip=CKV_AWS_356:KMS key policies must use Resource "*" (the key itself); access is delegated to this account's IAM
  statement {
    sid = "AccountAdministers"
    # tflint-ignore: movieapp_aws_iam_policy_service_wildcard # the AWS default key policy: delegates the key to the account's IAM policies
    actions   = ["kms:*"]
    resources = ["*"]

    principals {
      type        = "AWS"
      identifiers = ["arn:${data.aws_partition.current.partition}:iam::${data.aws_caller_identity.current.account_id}:root"]
    }
  }
}

resource "aws_kms_key" "ecr" {
  description             = "${var.name} ECR images"
  enable_key_rotation     = true
  deletion_window_in_days = 30
  policy                  = data.aws_iam_policy_document.key.json

  tags = var.tags
}

resource "aws_kms_alias" "ecr" {
  name          = "alias/${var.name}-ecr"
  target_key_id = aws_kms_key.ecr.key_id
}

resource "aws_ecr_repository" "this" {
  # checkov:skip=CKV_AWS_51:Immutable but for the one literal channel tag (latest) that promotion moves; test_invariants.py (ecr) refuses any other exclusion
  for_each = toset(var.repositories)

  # <name>/<repository>: a second environment in the same account and region
  # gets repositories of its own.
  name = "${var.name}/${each.value}"
  # Version tags never move; the one channel tag does: pushing a new build
  # under it is how a MovieApp that follows the channel (the CRD's default
  # tag) is promoted, and the operator rolls the new digest out at its next
  # resync. docs/upgrading.md describes both ways.
  image_tag_mutability = "IMMUTABLE_WITH_EXCLUSION"
  force_delete         = false

  image_tag_mutability_exclusion_filter {
    filter      = var.channel_tag
    filter_type = "WILDCARD"
  }

  image_scanning_configuration {
    scan_on_push = true
  }

  encryption_configuration {
    encryption_type = "KMS"
    kms_key         = aws_kms_key.ecr.arn
  }

  tags = var.tags
}

resource "aws_ecr_lifecycle_policy" "this" {
  for_each = aws_ecr_repository.this

  repository = each.value.name
  policy = jsonencode({
    rules = [
      {
        rulePriority = 1
        description  = "Delete untagged images after ${var.untagged_image_expiry_days} days"
        selection = {
          tagStatus   = "untagged"
          countType   = "sinceImagePushed"
          countUnit   = "days"
          countNumber = var.untagged_image_expiry_days
        }
        action = { type = "expire" }
      },
      {
        rulePriority = 2
        description  = "Keep the ${var.max_tagged_images} most recent tagged images"
        selection = {
          tagStatus      = "tagged"
          tagPatternList = ["*"]
          countType      = "imageCountMoreThan"
          countNumber    = var.max_tagged_images
        }
        action = { type = "expire" }
      },
    ]
  })
}
