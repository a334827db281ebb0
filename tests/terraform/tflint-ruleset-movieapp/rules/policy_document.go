package rules

import (
	"fmt"
	"strings"

	"github.com/terraform-linters/tflint-plugin-sdk/hclext"
	"github.com/terraform-linters/tflint-plugin-sdk/tflint"
)

// PolicyDocumentWildcardRule rejects aws_iam_policy_document statements
// that Allow every action on every resource. With ServiceWide set it is the
// companion rule that flags service-wide action wildcards ("sqs:*") in Allow
// statements (legitimate only in a few places, such as a KMS key policy
// delegating to the account, which carry a tflint-ignore with the reason).
type PolicyDocumentWildcardRule struct {
	tflint.DefaultRule
	ServiceWide bool
}

// Name returns the rule name.
func (r *PolicyDocumentWildcardRule) Name() string {
	if r.ServiceWide {
		return "movieapp_aws_iam_policy_service_wildcard"
	}
	return "movieapp_aws_iam_policy_wildcard"
}

// Enabled returns whether the rule is enabled by default.
func (r *PolicyDocumentWildcardRule) Enabled() bool { return true }

// Severity returns the rule severity.
func (r *PolicyDocumentWildcardRule) Severity() tflint.Severity { return tflint.ERROR }

// Link returns the rule reference link.
func (r *PolicyDocumentWildcardRule) Link() string { return docLink }

// Check runs the rule.
func (r *PolicyDocumentWildcardRule) Check(runner tflint.Runner) error {
	content, err := runner.GetModuleContent(&hclext.BodySchema{
		Blocks: []hclext.BlockSchema{{
			Type:       "data",
			LabelNames: []string{"type", "name"},
			Body: &hclext.BodySchema{
				Blocks: []hclext.BlockSchema{{
					Type: "statement",
					Body: &hclext.BodySchema{Attributes: []hclext.AttributeSchema{
						{Name: "effect"}, {Name: "actions"}, {Name: "resources"},
					}},
				}},
			},
		}},
	}, nil)
	if err != nil {
		return err
	}
	for _, data := range content.Blocks {
		if data.Labels[0] != "aws_iam_policy_document" {
			continue
		}
		for _, st := range data.Body.Blocks.OfType("statement") {
			effect := "Allow"
			if a, ok := st.Body.Attributes["effect"]; ok {
				if err := runner.EvaluateExpr(a.Expr, &effect, nil); err != nil && !ignorable(err) {
					return err
				}
			}
			if effect != "Allow" {
				continue
			}
			actionsAttr, ok := st.Body.Attributes["actions"]
			if !ok {
				continue
			}
			var actions []string
			if err := runner.EvaluateExpr(actionsAttr.Expr, &actions, nil); err != nil {
				if ignorable(err) {
					continue
				}
				return err
			}
			var resources []string
			if a, ok := st.Body.Attributes["resources"]; ok {
				if err := runner.EvaluateExpr(a.Expr, &resources, nil); err != nil && !ignorable(err) {
					return err
				}
			}
			for _, action := range actions {
				var msg string
				switch {
				case r.ServiceWide && action != "*" && strings.HasSuffix(action, ":*"):
					msg = fmt.Sprintf("statement allows the service-wide action %q; list the actions needed", action)
				case !r.ServiceWide && action == "*" && contains(resources, "*"):
					msg = "statement allows action \"*\" on resource \"*\""
				default:
					continue
				}
				if err := runner.EmitIssue(r, msg, actionsAttr.Expr.Range()); err != nil {
					return err
				}
			}
		}
	}
	return nil
}
