# The operator's naming rule (operator/src/naming.rs), so Terraform finds what
# the operator made: the physical name of a component is
# movieapp-<namespace>-<name>-<hash>-<component>, <hash> the first 8 hex
# digits of SHA-256 over "<namespace>/<name>", the readable part cut to the
# service's length limit and stripped of trailing hyphens. The fixed part is
# "movieapp", three hyphens, the hash and the component: 19 + its length.
# Checked against the rule by tests/terraform/check.sh (naming section).

locals {
  hash     = substr(sha256("${var.namespace}/${var.name}"), 0, 8)
  readable = "${var.namespace}-${var.name}"
  limits = {
    users         = 255 # DynamoDB table
    movies        = 255
    watchlists    = 255
    jobs          = 80 # SQS queue
    jobs-dlq      = 80
    notifications = 256 # SNS topic
  }
  readable_parts = {
    for component, limit in local.limits :
    component => replace(substr(local.readable, 0, max(0, limit - 19 - length(component))), "/-+$/", "")
  }
}
