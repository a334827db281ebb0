//go:build tools

// Package tools records the upstream command built by tests/gitops/build.sh,
// so that `go mod tidy` keeps its dependencies in go.mod and go.sum.
package tools

import (
	_ "github.com/fluxcd/source-controller"
)
