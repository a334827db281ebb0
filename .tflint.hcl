# TFLint configuration for terraform/ (run by tests/terraform/check.sh).
#
# Offline: no plugin is downloaded. The terraform ruleset is bundled in
# tflint; the AWS rules come from the project's own plugin
# (tests/terraform/tflint-ruleset-movieapp), which install-tools.sh builds
# into TFLINT_PLUGIN_DIR, hence no `source` below. The upstream
# tflint-ruleset-aws is not obtainable on the project's machines (see
# docs/terraform.md#lint-rules).

config {
  call_module_type = "local"
  force            = false
}

plugin "terraform" {
  enabled = true
  preset  = "all"
}

plugin "movieapp" {
  enabled = true
}

# Statements allowing "*" on "*" can never be waved through with an annotation.
rule "movieapp_aws_iam_policy_wildcard" {
  enabled   = true
  ignorable = false
}
