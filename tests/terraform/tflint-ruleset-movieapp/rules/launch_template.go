package rules

import (
	"github.com/terraform-linters/tflint-plugin-sdk/hclext"
	"github.com/terraform-linters/tflint-plugin-sdk/tflint"
)

// LaunchTemplateIMDSv2Rule requires every aws_launch_template to require
// IMDSv2 session tokens (metadata_options { http_tokens = "required" }).
type LaunchTemplateIMDSv2Rule struct {
	tflint.DefaultRule
}

// Name returns the rule name.
func (r *LaunchTemplateIMDSv2Rule) Name() string { return "movieapp_aws_launch_template_imdsv2" }

// Enabled returns whether the rule is enabled by default.
func (r *LaunchTemplateIMDSv2Rule) Enabled() bool { return true }

// Severity returns the rule severity.
func (r *LaunchTemplateIMDSv2Rule) Severity() tflint.Severity { return tflint.ERROR }

// Link returns the rule reference link.
func (r *LaunchTemplateIMDSv2Rule) Link() string { return docLink }

// Check runs the rule.
func (r *LaunchTemplateIMDSv2Rule) Check(runner tflint.Runner) error {
	content, err := runner.GetResourceContent("aws_launch_template", &hclext.BodySchema{
		Blocks: []hclext.BlockSchema{{
			Type: "metadata_options",
			Body: &hclext.BodySchema{Attributes: []hclext.AttributeSchema{{Name: "http_tokens"}}},
		}},
	}, nil)
	if err != nil {
		return err
	}
	for _, res := range content.Blocks {
		opts := res.Body.Blocks.OfType("metadata_options")
		if len(opts) == 0 {
			if err := runner.EmitIssue(r, "launch template must set metadata_options { http_tokens = \"required\" } (IMDSv2)", res.DefRange); err != nil {
				return err
			}
			continue
		}
		attr, ok := opts[0].Body.Attributes["http_tokens"]
		if !ok {
			if err := runner.EmitIssue(r, "metadata_options must set http_tokens = \"required\" (IMDSv2)", opts[0].DefRange); err != nil {
				return err
			}
			continue
		}
		var v string
		if err := runner.EvaluateExpr(attr.Expr, &v, nil); err != nil {
			if ignorable(err) {
				continue
			}
			return err
		}
		if v != "required" {
			if err := runner.EmitIssue(r, "http_tokens must be \"required\" (IMDSv2)", attr.Expr.Range()); err != nil {
				return err
			}
		}
	}
	return nil
}
