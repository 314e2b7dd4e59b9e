package kbs

import (
	"encoding/json"
	"net/http"
)

// problemTypeBase prefixes every problem type, as in the Confidential
// Containers KBS, so that KBS clients recognize the error kinds.
const problemTypeBase = "https://github.com/confidential-containers/kbs/errors/"

// Problem is an RFC 7807 problem-details body, the format of every error
// the broker returns.
type Problem struct {
	Type   string `json:"type"`
	Detail string `json:"detail"`
}

// Problem kinds, the last element of [Problem.Type].
const (
	KindProtocolVersion    = "ProtocolVersion"
	KindInvalidRequest     = "InvalidRequest"
	KindInvalidRequestPath = "InvalidRequestPath"
	KindInvalidSession     = "InvalidSession"
	KindAttestationError   = "AttestationError"
	KindTokenNotFound      = "TokenNotFound"
	KindInvalidToken       = "InvalidToken"
	KindPolicyDeny         = "PolicyDeny"
	KindResourceNotFound   = "ResourceNotFound"
	KindVaultUnavailable   = "VaultUnavailable"
	KindAdminAuth          = "AdminAuth"
	KindNotFound           = "NotFound"
	KindInternal           = "InternalError"
)

// httpError is an error with the HTTP status and problem kind of its response.
type httpError struct {
	status int
	kind   string
	detail string
}

func (e *httpError) Error() string { return e.kind + ": " + e.detail }

func errorf(status int, kind, detail string) *httpError {
	return &httpError{status: status, kind: kind, detail: detail}
}

func writeProblem(w http.ResponseWriter, e *httpError) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(e.status)
	_ = json.NewEncoder(w).Encode(Problem{Type: problemTypeBase + e.kind, Detail: e.detail})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
