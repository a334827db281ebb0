// Package rules holds the AWS rules of the movieapp TFLint plugin.
package rules

import (
	"errors"

	"github.com/terraform-linters/tflint-plugin-sdk/tflint"
)

const docLink = "https://github.com/movieapp/movieapp/blob/main/docs/terraform.md#lint-rules"

// All returns every rule of the plugin. All are enabled by default.
func All() []tflint.Rule {
	return []tflint.Rule{
		&EnumRule{},
		&InstanceTypeRule{},
		&LaunchTemplateIMDSv2Rule{},
		&PolicyDocumentWildcardRule{},
		&PolicyDocumentWildcardRule{ServiceWide: true},
		&ProviderDefaultTagsRule{},
	}
}

// ignorable reports whether an evaluation error only means "value not known
// statically" (unknown, null or sensitive), which rules skip.
func ignorable(err error) bool {
	return errors.Is(err, tflint.ErrUnknownValue) ||
		errors.Is(err, tflint.ErrNullValue) ||
		errors.Is(err, tflint.ErrSensitive)
}
