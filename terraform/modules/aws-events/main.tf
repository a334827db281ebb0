# AWS change events for the operator (docs/aws-events.md): CloudTrail records
# the DynamoDB, SQS and SNS write calls of the account (management events) and
# hands them to EventBridge's default bus as "AWS API Call via CloudTrail";
# a rule keeps the writes on resources under the operator's name prefix and
# sends them to an SQS queue that the operator reads with --events-queue-url.
# Only that rule may send to the queue (aws:SourceArn); what the operator
# cannot read ends in the dead-letter queue, and so do events EventBridge
# cannot deliver.
#
# EventBridge sees CloudTrail's events only while a trail logs in the region
# ("To record events with one of the CloudTrail detail-type values, you must
# enable a CloudTrail trail with logging", EventBridge User Guide). This
# module makes one (write-only management events, to an encrypted S3 bucket)
# unless create_trail is false because the account already has one, such as
# an organization trail.

data "aws_region" "current" {}
data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}

locals {
  region     = data.aws_region.current.region
  account_id = data.aws_caller_identity.current.account_id
  partition  = data.aws_partition.current.partition
  trail_name = "${var.name}-aws-events"
  trail_arn  = "arn:${local.partition}:cloudtrail:${local.region}:${local.account_id}:trail/${local.trail_name}"
}

# --- The rule and its queue --------------------------------------------------

resource "aws_cloudwatch_event_rule" "changes" {
  name        = "${var.name}-aws-changes"
  description = "DynamoDB, SQS and SNS writes on ${var.resource_prefix}* resources, for the movieapp-operator (--events-queue-url)"
  # The calls the operator's consumer reads (operator/src/events.rs), on the
  # names it gives (operator/src/naming.rs) and those MovieApps set
  # explicitly; tests/terraform/test_invariants.py (events-rule) matches
  # sample events against it.
  event_pattern = templatefile("${path.module}/event-pattern.json.tftpl", {
    prefix = var.resource_prefix
    names  = var.external_names
  })
  state = "ENABLED"

  tags = var.tags
}

resource "aws_cloudwatch_event_target" "queue" {
  rule      = aws_cloudwatch_event_rule.changes.name
  target_id = "operator-events-queue"
  arn       = aws_sqs_queue.events.arn

  retry_policy {
    maximum_event_age_in_seconds = 3600
    maximum_retry_attempts       = 20
  }

  # What EventBridge could not deliver (the queue gone, its policy broken).
  dead_letter_config {
    arn = aws_sqs_queue.dead_letter.arn
  }
}

resource "aws_sqs_queue" "events" {
  name                       = "${var.name}-aws-events"
  message_retention_seconds  = var.message_retention_seconds
  visibility_timeout_seconds = 30
  receive_wait_time_seconds  = 5
  sqs_managed_sse_enabled    = true

  # A message the operator cannot read (not an EventBridge event) is left in
  # the queue; after max_receive_count receives it moves here.
  redrive_policy = jsonencode({
    deadLetterTargetArn = aws_sqs_queue.dead_letter.arn
    maxReceiveCount     = var.max_receive_count
  })

  tags = var.tags
}

resource "aws_sqs_queue" "dead_letter" {
  name                      = "${var.name}-aws-events-dlq"
  message_retention_seconds = 1209600
  sqs_managed_sse_enabled   = true

  tags = var.tags
}

resource "aws_sqs_queue_redrive_allow_policy" "dead_letter" {
  queue_url = aws_sqs_queue.dead_letter.id
  redrive_allow_policy = jsonencode({
    redrivePermission = "byQueue"
    sourceQueueArns   = [aws_sqs_queue.events.arn]
  })
}

# Only the rule sends to either queue (the events, and what EventBridge could
# not deliver): EventBridge's service principal, on behalf of this one rule
# (aws:SourceArn), and nothing else. The operator reads with its role's IAM
# policy (module iam, events_queue_arns).
locals {
  rule_queues = {
    events      = aws_sqs_queue.events
    dead_letter = aws_sqs_queue.dead_letter
  }
}

data "aws_iam_policy_document" "rule_sends" {
  for_each = local.rule_queues

  statement {
    sid       = "ChangesRuleSends"
    actions   = ["sqs:SendMessage"]
    resources = [each.value.arn]

    principals {
      type        = "Service"
      identifiers = ["events.amazonaws.com"]
    }

    condition {
      test     = "ArnEquals"
      variable = "aws:SourceArn"
      values   = [aws_cloudwatch_event_rule.changes.arn]
    }
  }
}

resource "aws_sqs_queue_policy" "rule_sends" {
  for_each = local.rule_queues

  queue_url = each.value.id
  policy    = data.aws_iam_policy_document.rule_sends[each.key].json
}

# --- The trail EventBridge needs (unless the account has one) ---------------

data "aws_iam_policy_document" "trail_key" {
  # checkov:skip=CKV_AWS_109:KMS key policies must use Resource "*" (the key itself); access is limited to this account and CloudTrail for this trail
  # checkov:skip=CKV_AWS_111:KMS key policies must use Resource "*" (the key itself); access is limited to this account and CloudTrail for this trail
  # checkov:skip=CKV_AWS_356:KMS key policies must use Resource "*" (the key itself); access is limited to this account and CloudTrail for this trail
  statement {
    sid = "AccountAdministers"
    # tflint-ignore: movieapp_aws_iam_policy_service_wildcard # the AWS default key policy: delegates the key to the account's IAM policies
    actions   = ["kms:*"]
    resources = ["*"]

    principals {
      type        = "AWS"
      identifiers = ["arn:${local.partition}:iam::${local.account_id}:root"]
    }
  }

  statement {
    sid       = "CloudTrailEncrypts"
    actions   = ["kms:GenerateDataKey*", "kms:DescribeKey"]
    resources = ["*"]

    principals {
      type        = "Service"
      identifiers = ["cloudtrail.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceArn"
      values   = [local.trail_arn]
    }
  }
}

resource "aws_kms_key" "trail" {
  count = var.create_trail ? 1 : 0

  description             = "${local.trail_name} CloudTrail log files"
  enable_key_rotation     = true
  deletion_window_in_days = 30
  policy                  = data.aws_iam_policy_document.trail_key.json

  tags = var.tags
}

resource "aws_kms_alias" "trail" {
  count = var.create_trail ? 1 : 0

  name          = "alias/${local.trail_name}"
  target_key_id = aws_kms_key.trail[0].key_id
}

resource "aws_s3_bucket" "trail" {
  # checkov:skip=CKV_AWS_18:The bucket holds CloudTrail's own log files; access logs of it would need another bucket, left to accounts that keep one for all their buckets
  # checkov:skip=CKV_AWS_144:CloudTrail log files of one region's management writes; replicating them to another region is left to accounts whose audit policy asks for it
  # checkov:skip=CKV2_AWS_62:Nothing reacts to new log files: the operator reads the events from EventBridge, not from the bucket
  count = var.create_trail ? 1 : 0

  bucket_prefix = "${var.name}-aws-events-trail-"
  force_destroy = false

  tags = var.tags
}

resource "aws_s3_bucket_public_access_block" "trail" {
  count = var.create_trail ? 1 : 0

  bucket                  = aws_s3_bucket.trail[0].id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_ownership_controls" "trail" {
  count = var.create_trail ? 1 : 0

  bucket = aws_s3_bucket.trail[0].id
  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_versioning" "trail" {
  count = var.create_trail ? 1 : 0

  bucket = aws_s3_bucket.trail[0].id
  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "trail" {
  count = var.create_trail ? 1 : 0

  bucket = aws_s3_bucket.trail[0].id
  rule {
    bucket_key_enabled = true
    apply_server_side_encryption_by_default {
      sse_algorithm     = "aws:kms"
      kms_master_key_id = aws_kms_key.trail[0].arn
    }
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "trail" {
  count = var.create_trail ? 1 : 0

  bucket = aws_s3_bucket.trail[0].id
  rule {
    id     = "expire-log-files"
    status = "Enabled"
    filter {}
    expiration {
      days = var.trail_log_retention_days
    }
    noncurrent_version_expiration {
      noncurrent_days = 7
    }
    abort_incomplete_multipart_upload {
      days_after_initiation = 7
    }
  }
}

data "aws_iam_policy_document" "trail_bucket" {
  count = var.create_trail ? 1 : 0

  statement {
    sid       = "CloudTrailChecksAcl"
    actions   = ["s3:GetBucketAcl"]
    resources = [aws_s3_bucket.trail[0].arn]

    principals {
      type        = "Service"
      identifiers = ["cloudtrail.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceArn"
      values   = [local.trail_arn]
    }
  }

  statement {
    sid       = "CloudTrailWrites"
    actions   = ["s3:PutObject"]
    resources = ["${aws_s3_bucket.trail[0].arn}/AWSLogs/${local.account_id}/*"]

    principals {
      type        = "Service"
      identifiers = ["cloudtrail.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceArn"
      values   = [local.trail_arn]
    }
  }

  statement {
    sid       = "TlsOnly"
    effect    = "Deny"
    actions   = ["s3:*"]
    resources = [aws_s3_bucket.trail[0].arn, "${aws_s3_bucket.trail[0].arn}/*"]

    principals {
      type        = "AWS"
      identifiers = ["*"]
    }

    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }
}

resource "aws_s3_bucket_policy" "trail" {
  count = var.create_trail ? 1 : 0

  bucket = aws_s3_bucket.trail[0].id
  policy = data.aws_iam_policy_document.trail_bucket[0].json
}

resource "aws_cloudtrail" "this" {
  # checkov:skip=CKV2_AWS_10:EventBridge already receives the events; a CloudWatch Logs copy would be paid ingestion of the same events
  # checkov:skip=CKV_AWS_252:Nobody subscribes to log-file deliveries: the operator reads EventBridge, not the bucket
  count = var.create_trail ? 1 : 0

  name           = local.trail_name
  s3_bucket_name = aws_s3_bucket.trail[0].id
  kms_key_id     = aws_kms_key.trail[0].arn
  # The first copy of management events is free in every region, so one
  # multi-region trail costs no more than one in this region.
  is_multi_region_trail         = true
  include_global_service_events = true
  enable_log_file_validation    = true
  enable_logging                = true

  # Writes only: the rule matches writes, and EventBridge does not deliver
  # the Describe/Get/List reads of rules in their default state.
  event_selector {
    read_write_type           = "WriteOnly"
    include_management_events = true
  }

  tags = var.tags

  depends_on = [aws_s3_bucket_policy.trail]
}
