// Command kstatus_oracle prints what Flux's Go code computes for each object it reads: one JSON
// request per stdin line ({"reader": "compute"|"job", "object": {...}}), one JSON answer per
// stdout line. tests/unit/test_kstatus.py compares tidal.kube.kstatus against it.
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"

	"github.com/fluxcd/cli-utils/pkg/kstatus/status"
	"github.com/fluxcd/pkg/runtime/statusreaders"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utiljson "k8s.io/apimachinery/pkg/util/json"
)

type request struct {
	Reader string          `json:"reader"`
	Object json.RawMessage `json:"object"`
}

type condition struct {
	Type    string `json:"type"`
	Status  string `json:"status"`
	Reason  string `json:"reason"`
	Message string `json:"message"`
}

type answer struct {
	Status     string      `json:"status,omitempty"`
	Message    string      `json:"message"`
	Conditions []condition `json:"conditions"`
	Error      string      `json:"error,omitempty"`
}

func main() {
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 1<<20), 1<<24)
	out := json.NewEncoder(os.Stdout)
	for in.Scan() {
		var req request
		if err := json.Unmarshal(in.Bytes(), &req); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		// The API machinery's JSON decoding, so numbers become int64 or float64 as they do for
		// objects read from a cluster; unlike Unstructured.UnmarshalJSON it accepts any
		// apiVersion, malformed ones included.
		var content map[string]interface{}
		if err := utiljson.Unmarshal(req.Object, &content); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		u := &unstructured.Unstructured{Object: content}
		var res *status.Result
		var err error
		switch req.Reader {
		case "compute":
			res, err = status.Compute(u)
		case "job":
			r := statusreaders.ComputeJobStatus(u)
			res = &r
		default:
			fmt.Fprintf(os.Stderr, "unknown reader %q\n", req.Reader)
			os.Exit(2)
		}
		a := answer{Conditions: []condition{}}
		if err != nil {
			a.Error = err.Error()
		} else {
			a.Status = string(res.Status)
			a.Message = res.Message
			for _, c := range res.Conditions {
				a.Conditions = append(a.Conditions, condition{
					string(c.Type), string(c.Status), c.Reason, c.Message,
				})
			}
		}
		if err := out.Encode(a); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
	}
	if err := in.Err(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
}
