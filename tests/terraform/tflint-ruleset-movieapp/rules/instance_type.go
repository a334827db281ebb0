package rules

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/terraform-linters/tflint-plugin-sdk/hclext"
	"github.com/terraform-linters/tflint-plugin-sdk/tflint"
)

// instanceTypeFormat is the shape of every EC2 instance type name
// (family, optional generation/attribute letters, a dot, a size).
var instanceTypeFormat = regexp.MustCompile(`^[a-z][a-z0-9-]*[0-9][a-z0-9-]*\.[0-9]*(nano|micro|small|medium|large|xlarge|metal)(-[0-9]+xl)?$`)

// previousGeneration lists EC2 families AWS calls "previous generation":
// more expensive and slower than current ones, and not offered everywhere.
var previousGeneration = map[string]bool{
	"a1": true, "c1": true, "c3": true, "c4": true, "cc2": true, "cr1": true,
	"d2": true, "g2": true, "g3": true, "g3s": true, "h1": true, "hs1": true,
	"i2": true, "i3": true, "m1": true, "m2": true, "m3": true, "m4": true,
	"p2": true, "p3": true, "r3": true, "r4": true, "t1": true, "x1": true,
	"x1e": true,
}

// InstanceTypeRule checks EC2 instance types of launch templates, instances
// and EKS node groups: well formed and of a current generation.
type InstanceTypeRule struct {
	tflint.DefaultRule
}

// Name returns the rule name.
func (r *InstanceTypeRule) Name() string { return "movieapp_aws_instance_type" }

// Enabled returns whether the rule is enabled by default.
func (r *InstanceTypeRule) Enabled() bool { return true }

// Severity returns the rule severity.
func (r *InstanceTypeRule) Severity() tflint.Severity { return tflint.ERROR }

// Link returns the rule reference link.
func (r *InstanceTypeRule) Link() string { return docLink }

// Check runs the rule.
func (r *InstanceTypeRule) Check(runner tflint.Runner) error {
	targets := []struct {
		resource, attribute string
		list                bool
	}{
		{"aws_launch_template", "instance_type", false},
		{"aws_instance", "instance_type", false},
		{"aws_eks_node_group", "instance_types", true},
	}
	for _, t := range targets {
		content, err := runner.GetResourceContent(t.resource, &hclext.BodySchema{
			Attributes: []hclext.AttributeSchema{{Name: t.attribute}},
		}, nil)
		if err != nil {
			return err
		}
		for _, res := range content.Blocks {
			attr, ok := res.Body.Attributes[t.attribute]
			if !ok {
				continue
			}
			var types []string
			if t.list {
				err = runner.EvaluateExpr(attr.Expr, &types, nil)
			} else {
				var one string
				err = runner.EvaluateExpr(attr.Expr, &one, nil)
				types = []string{one}
			}
			if err != nil {
				if ignorable(err) {
					continue
				}
				return err
			}
			for _, it := range types {
				if err := r.checkType(runner, it, attr.Expr.Range()); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

func (r *InstanceTypeRule) checkType(runner tflint.Runner, it string, rng hcl.Range) error {
	if !instanceTypeFormat.MatchString(it) {
		return runner.EmitIssue(r, fmt.Sprintf("%q is not an EC2 instance type", it), rng)
	}
	family := strings.SplitN(it, ".", 2)[0]
	if previousGeneration[family] {
		return runner.EmitIssue(r, fmt.Sprintf("%q is a previous-generation instance type; use a current one", it), rng)
	}
	return nil
}
