package client

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// ResourceError is a request that the broker rejected, with its RFC 7807
// problem details.
type ResourceError struct {
	// Endpoint is the request path, for example "/kbs/v0/attest".
	Endpoint string
	// Resource is the resource path for resource requests, else empty.
	Resource string
	// StatusCode is the HTTP status.
	StatusCode int
	// Kind is the last element of the problem type, for example "PolicyDeny".
	Kind string
	// Detail is the broker's explanation.
	Detail string
}

func (e *ResourceError) Error() string {
	what := e.Endpoint
	if e.Resource != "" {
		what = "resource " + e.Resource
	}
	status := fmt.Sprintf("%d %s", e.StatusCode, http.StatusText(e.StatusCode))
	if e.Kind != "" {
		status += ", " + e.Kind
	}
	return fmt.Sprintf("kbs client: broker rejected %s (%s): %s", what, status, e.Detail)
}

func readProblem(resp *http.Response, endpoint, resource string) error {
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	e := &ResourceError{Endpoint: endpoint, Resource: resource, StatusCode: resp.StatusCode}
	var problem struct {
		Type   string `json:"type"`
		Detail string `json:"detail"`
	}
	if json.Unmarshal(body, &problem) == nil && problem.Type != "" {
		e.Kind = problem.Type[strings.LastIndex(problem.Type, "/")+1:]
		e.Detail = problem.Detail
	} else {
		e.Detail = strings.TrimSpace(string(body))
		if len(e.Detail) > 200 {
			e.Detail = e.Detail[:200] + "..."
		}
	}
	return e
}
