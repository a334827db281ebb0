// Command kstatus reads one Kubernetes object as JSON on stdin and prints
// the status kstatus computes for it (Current, InProgress, Failed, ...) and
// its message, as JSON: {"status": "...", "message": "..."}.
package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
)

func main() {
	input, err := io.ReadAll(os.Stdin)
	if err != nil {
		fail("reading stdin: %v", err)
	}
	// UnmarshalJSON keeps integers as int64, as the API machinery expects.
	object := &unstructured.Unstructured{}
	if err := object.UnmarshalJSON(input); err != nil {
		fail("stdin is not a Kubernetes object: %v", err)
	}
	result, err := status.Compute(object)
	if err != nil {
		fail("computing status: %v", err)
	}
	out, err := json.Marshal(map[string]string{
		"status":  result.Status.String(),
		"message": result.Message,
	})
	if err != nil {
		fail("encoding the result: %v", err)
	}
	fmt.Println(string(out))
}

func fail(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "kstatus: "+format+"\n", args...)
	os.Exit(1)
}
