//go:build tools

// Package tools records the kubelet built by build.sh for the opt-in real
// node, so that `go mod tidy` keeps its dependencies in go.mod and go.sum.
// It is a module of its own so that the control plane's cache key (go.mod
// and go.sum one directory up) does not change when the kubelet is added.
package tools

import (
	_ "k8s.io/kubernetes/cmd/kubelet"
)
