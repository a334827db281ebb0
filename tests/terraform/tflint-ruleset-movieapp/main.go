// Command tflint-ruleset-movieapp is a small TFLint plugin with AWS rules for
// the movieapp Terraform. It exists because the upstream AWS ruleset
// (github.com/terraform-linters/tflint-ruleset-aws) cannot be fetched on the
// project's machines (the Go module proxy refuses it and GitHub release
// downloads are unreachable). It is built from this folder by
// tests/terraform/install-tools.sh and loaded by TFLint from
// TFLINT_PLUGIN_DIR, declared in .tflint.hcl without a `source`.
package main

import (
	"github.com/terraform-linters/tflint-plugin-sdk/plugin"
	"github.com/terraform-linters/tflint-plugin-sdk/tflint"

	"movieapp.io/tflint-ruleset-movieapp/rules"
)

// Version is reported by `tflint --version`.
const Version = "0.1.0"

func main() {
	plugin.Serve(&plugin.ServeOpts{
		RuleSet: &tflint.BuiltinRuleSet{
			Name:    "movieapp",
			Version: Version,
			Rules:   rules.All(),
		},
	})
}
