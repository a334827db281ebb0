package rules

import (
	"github.com/terraform-linters/tflint-plugin-sdk/hclext"
	"github.com/terraform-linters/tflint-plugin-sdk/tflint"
)

// ProviderDefaultTagsRule requires every `provider "aws"` block of a root
// module to set default_tags, so that every taggable resource is tagged.
type ProviderDefaultTagsRule struct {
	tflint.DefaultRule
}

// Name returns the rule name.
func (r *ProviderDefaultTagsRule) Name() string { return "movieapp_aws_provider_default_tags" }

// Enabled returns whether the rule is enabled by default.
func (r *ProviderDefaultTagsRule) Enabled() bool { return true }

// Severity returns the rule severity.
func (r *ProviderDefaultTagsRule) Severity() tflint.Severity { return tflint.ERROR }

// Link returns the rule reference link.
func (r *ProviderDefaultTagsRule) Link() string { return docLink }

// Check runs the rule.
func (r *ProviderDefaultTagsRule) Check(runner tflint.Runner) error {
	path, err := runner.GetModulePath()
	if err != nil {
		return err
	}
	if !path.IsRoot() {
		return nil
	}
	content, err := runner.GetProviderContent("aws", &hclext.BodySchema{
		Blocks: []hclext.BlockSchema{{
			Type: "default_tags",
			Body: &hclext.BodySchema{Attributes: []hclext.AttributeSchema{{Name: "tags"}}},
		}},
	}, nil)
	if err != nil {
		return err
	}
	for _, p := range content.Blocks {
		dt := p.Body.Blocks.OfType("default_tags")
		if len(dt) == 0 {
			if err := runner.EmitIssue(r, "provider \"aws\" must set default_tags", p.DefRange); err != nil {
				return err
			}
			continue
		}
		if _, ok := dt[0].Body.Attributes["tags"]; !ok {
			if err := runner.EmitIssue(r, "default_tags must set tags", dt[0].DefRange); err != nil {
				return err
			}
		}
	}
	return nil
}
