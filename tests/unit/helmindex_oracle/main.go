// Command helmindex_oracle prints what Flux's source-controller stores for a Helm repository
// index: one JSON request per stdin line ({"id": ..., "data": <base64 index bytes>}), one JSON
// answer per stdout line ({"id": ..., "json": <base64 artifact bytes>} or {"id": ..., "error":
// ...}). It repeats source-controller's IndexFromBytes glue (internal/helm/repository, not
// importable) on top of Helm's own IndexFile, Validate, SortEntries and encoding/json, which do
// the real work. tests/unit/test_helm_index.py compares tidal.source.helm.index against it.
package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"os"
	"strings"

	chart "helm.sh/helm/v4/pkg/chart/v2"
	repo "helm.sh/helm/v4/pkg/repo/v1"
	"sigs.k8s.io/yaml"
)

type request struct {
	ID   string `json:"id"`
	Data []byte `json:"data"`
}

type answer struct {
	ID    string `json:"id"`
	JSON  []byte `json:"json,omitempty"`
	Error string `json:"error,omitempty"`
}

func indexFromBytes(b []byte) (*repo.IndexFile, error) {
	if len(b) == 0 {
		return nil, repo.ErrEmptyIndexYaml
	}
	i := &repo.IndexFile{}
	var err error
	if json.Valid(b) {
		err = json.Unmarshal(b, i)
	} else {
		err = yaml.UnmarshalStrict(b, i)
	}
	if err != nil {
		return nil, err
	}
	if i.APIVersion == "" {
		return nil, repo.ErrNoAPIVersion
	}
	for name, cvs := range i.Entries {
		for idx := len(cvs) - 1; idx >= 0; idx-- {
			if cvs[idx] == nil {
				cvs = append(cvs[:idx], cvs[idx+1:]...)
				continue
			}
			if cvs[idx].Metadata == nil {
				cvs[idx].Metadata = &chart.Metadata{}
			}
			if cvs[idx].APIVersion == "" {
				cvs[idx].APIVersion = chart.APIVersionV1
			}
			if err := cvs[idx].Validate(); skippable(err) != nil {
				cvs = append(cvs[:idx], cvs[idx+1:]...)
			}
		}
		i.Entries[name] = cvs
	}
	i.SortEntries()
	return i, nil
}

func skippable(err error) error {
	var verr chart.ValidationError
	if !errors.As(err, &verr) {
		return err
	}
	if strings.HasPrefix(verr.Error(), "validation: more than one dependency with name or alias") {
		return nil
	}
	return err
}

func main() {
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 1<<20), 256<<20)
	out := json.NewEncoder(os.Stdout)
	for in.Scan() {
		var req request
		if err := json.Unmarshal(in.Bytes(), &req); err != nil {
			panic(err)
		}
		ans := answer{ID: req.ID}
		if i, err := indexFromBytes(req.Data); err != nil {
			ans.Error = err.Error()
		} else if b, err := json.MarshalIndent(i, "", "  "); err != nil {
			ans.Error = err.Error()
		} else {
			ans.JSON = b
		}
		if err := out.Encode(ans); err != nil {
			panic(err)
		}
	}
	if err := in.Err(); err != nil {
		panic(err)
	}
}
