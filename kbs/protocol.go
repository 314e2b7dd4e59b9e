package kbs

import (
	"bytes"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"
	"unicode"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"cove.dev/cove/attest"
)

// sessionCookie is the cookie that carries the KBS session id.
const sessionCookie = "kbs-session-id"

// maxRequestSize bounds protocol request bodies: evidence is below 100 KiB.
const maxRequestSize = 256 << 10

// supportedTEE is the only tee value the broker accepts in /kbs/v0/auth.
// Cove's software device announces it too, because its evidence has the
// same format; the signing root tells the two apart.
const supportedTEE = "snp"

type authRequest struct {
	Version     string          `json:"version"`
	TEE         string          `json:"tee"`
	ExtraParams json.RawMessage `json:"extra-params"`
}

type attestRequest struct {
	InitData    json.RawMessage `json:"init-data"`
	RuntimeData json.RawMessage `json:"runtime-data"`
	TEEEvidence struct {
		PrimaryEvidence    json.RawMessage `json:"primary_evidence"`
		AdditionalEvidence json.RawMessage `json:"additional_evidence"`
	} `json:"tee-evidence"`
}

type runtimeData struct {
	Nonce     string
	TEEPubKey json.RawMessage
}

// parseRuntimeData reads the nonce and tee-pubkey members of a runtime-data
// object, matching their names exactly. REPORT_DATA binds the canonical
// JSON of the object, in which a duplicate member keeps only its last value
// and members that differ in case are distinct. encoding/json matches
// struct fields case-insensitively, so an object with both "tee-pubkey" and
// "TEE-PUBKEY" would bind one key while a case-sensitive reader used the
// other. Such objects, and exact duplicates, are rejected at any depth.
func parseRuntimeData(raw json.RawMessage) (runtimeData, error) {
	var members map[string]json.RawMessage
	if err := json.Unmarshal(raw, &members); err != nil || members == nil {
		return runtimeData{}, errors.New("runtime-data is missing or not an object")
	}
	if err := checkMemberNames(raw); err != nil {
		return runtimeData{}, fmt.Errorf("runtime-data is ambiguous: %v", err)
	}
	var rd runtimeData
	if err := json.Unmarshal(members["nonce"], &rd.Nonce); err != nil {
		return runtimeData{}, errors.New(`runtime-data has no "nonce" string member`)
	}
	rd.TEEPubKey = members["tee-pubkey"]
	return rd, nil
}

// checkMemberNames returns an error when an object in the JSON text data
// has two member names that are equal after the case folding encoding/json
// applies when it matches names.
func checkMemberNames(data []byte) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	return checkValueMemberNames(dec)
}

func checkValueMemberNames(dec *json.Decoder) error {
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	switch tok {
	case json.Delim('{'):
		seen := map[string]string{}
		for dec.More() {
			nameTok, err := dec.Token()
			if err != nil {
				return err
			}
			name, _ := nameTok.(string)
			folded := foldMemberName(name)
			if prev, ok := seen[folded]; ok {
				return fmt.Errorf("member %q repeats member %q, which JSON parsers read differently", name, prev)
			}
			seen[folded] = name
			if err := checkValueMemberNames(dec); err != nil {
				return err
			}
		}
	case json.Delim('['):
		for dec.More() {
			if err := checkValueMemberNames(dec); err != nil {
				return err
			}
		}
	default:
		return nil
	}
	_, err = dec.Token() // the closing '}' or ']'
	return err
}

// foldMemberName folds name as encoding/json does when it matches a member
// name to a struct field: each rune becomes the upper case of its lower
// case, so that "K", "k" and the Kelvin sign U+212A fold alike.
func foldMemberName(name string) string {
	var b strings.Builder
	for _, r := range name {
		b.WriteRune(unicode.ToUpper(unicode.ToLower(r)))
	}
	return b.String()
}

// attestation is what a successful /kbs/v0/attest established, kept for
// the resource requests of its session.
type attestation struct {
	claims      *attest.SNPClaims
	runtimeData json.RawMessage
	teeKey      *jose.JSONWebKey
	keyAlg      jose.KeyAlgorithm
	tee         string
	expires     time.Time
}

// attestationStore maps session ids to attestations until they expire.
type attestationStore struct {
	now func() time.Time

	mu   sync.Mutex
	byID map[string]*attestation
}

func newAttestationStore(now func() time.Time) *attestationStore {
	return &attestationStore{now: now, byID: map[string]*attestation{}}
}

func (st *attestationStore) put(id string, a *attestation) {
	st.mu.Lock()
	defer st.mu.Unlock()
	now := st.now()
	for k, v := range st.byID {
		if !now.Before(v.expires) {
			delete(st.byID, k)
		}
	}
	st.byID[id] = a
}

func (st *attestationStore) get(id string) (*attestation, bool) {
	st.mu.Lock()
	defer st.mu.Unlock()
	a, ok := st.byID[id]
	if !ok || !st.now().Before(a.expires) {
		return nil, false
	}
	return a, true
}

func (s *Server) handleAuth(w http.ResponseWriter, r *http.Request) {
	var req authRequest
	if err := decodeJSON(r, &req); err != nil {
		writeProblem(w, errorf(http.StatusBadRequest, KindInvalidRequest,
			"invalid /kbs/v0/auth request: "+err.Error()))
		return
	}
	if req.Version != ProtocolVersion {
		s.log.Info("auth rejected: unsupported protocol version",
			"tee", req.TEE, "version", req.Version, "verdict", "deny")
		writeProblem(w, errorf(http.StatusUnauthorized, KindProtocolVersion, fmt.Sprintf(
			"KBS protocol version %q is not supported; this broker supports exactly %s", req.Version, ProtocolVersion)))
		return
	}
	if req.TEE != supportedTEE {
		writeProblem(w, errorf(http.StatusBadRequest, KindInvalidRequest, fmt.Sprintf(
			"tee %q is not supported; this broker accepts %q evidence only", req.TEE, supportedTEE)))
		return
	}
	sess, err := s.sessions.create(req.TEE)
	if err != nil {
		writeProblem(w, errorf(http.StatusInternalServerError, KindInternal,
			"creating a session failed"))
		return
	}
	if sess == nil {
		s.log.Warn("auth rejected: every session in the full session store has a token", "max_sessions", s.sessions.max)
		writeProblem(w, errorf(http.StatusServiceUnavailable, KindInternal,
			"too many open sessions; try again later"))
		return
	}
	http.SetCookie(w, &http.Cookie{
		Name:     sessionCookie,
		Value:    sess.id,
		Path:     "/kbs/v0",
		Expires:  sess.expires,
		Secure:   true,
		HttpOnly: true,
		SameSite: http.SameSiteStrictMode,
	})
	writeJSON(w, http.StatusOK, map[string]any{"nonce": sess.nonce, "extra-params": map[string]any{}})
}

// attestEvent collects the fields of the one log event of an attestation.
type attestEvent struct {
	tee      string
	job      string
	insecure bool
}

func (s *Server) handleAttest(w http.ResponseWriter, r *http.Request) {
	var ev attestEvent
	token, err := s.attest(r, &ev)
	attrs := []any{"tee", ev.tee, "job", ev.job}
	if ev.insecure {
		attrs = append(attrs, "insecure_test_only_root", true)
	}
	if err != nil {
		var he *httpError
		if !errors.As(err, &he) {
			he = errorf(http.StatusInternalServerError, KindInternal, err.Error())
		}
		s.log.Info("attestation", append(attrs, "verdict", "deny", "reason", he.detail)...)
		writeProblem(w, he)
		return
	}
	s.log.Info("attestation", append(attrs, "verdict", "allow", "reason", "evidence genuine and bound to runtime-data")...)
	writeJSON(w, http.StatusOK, map[string]string{"token": token})
}

// attest runs /kbs/v0/attest: it consumes the session's nonce, verifies
// the evidence and its binding to the runtime-data, and issues a token.
func (s *Server) attest(r *http.Request, ev *attestEvent) (string, error) {
	cookie, err := r.Cookie(sessionCookie)
	if err != nil {
		return "", errorf(http.StatusUnauthorized, KindInvalidSession,
			"no kbs-session-id cookie; start with /kbs/v0/auth")
	}
	sess, reason := s.sessions.beginAttest(cookie.Value)
	if reason != "" {
		return "", errorf(http.StatusUnauthorized, KindInvalidSession, reason)
	}
	ev.tee = sess.tee

	var req attestRequest
	if err := decodeJSON(r, &req); err != nil {
		return "", errorf(http.StatusBadRequest, KindInvalidRequest,
			"invalid /kbs/v0/attest request: "+err.Error())
	}
	if len(req.InitData) > 0 && !bytes.Equal(req.InitData, []byte("null")) {
		return "", errorf(http.StatusBadRequest, KindInvalidRequest,
			"init-data is not supported; Cove binds the job through HOST_DATA")
	}
	rd, err := parseRuntimeData(req.RuntimeData)
	if err != nil {
		return "", errorf(http.StatusBadRequest, KindInvalidRequest, err.Error())
	}
	if subtle.ConstantTimeCompare([]byte(rd.Nonce), []byte(sess.nonce)) != 1 {
		return "", errorf(http.StatusUnauthorized, KindAttestationError,
			"runtime-data nonce is not the nonce of this session; start again with /kbs/v0/auth")
	}
	teeKey, keyAlg, err := parseTEEKey(rd.TEEPubKey)
	if err != nil {
		return "", errorf(http.StatusBadRequest, KindInvalidRequest, err.Error())
	}

	evidence, err := attest.ParseSNPEvidence(req.TEEEvidence.PrimaryEvidence)
	if err != nil {
		return "", errorf(http.StatusUnauthorized, KindAttestationError,
			"primary_evidence: "+err.Error())
	}
	claims, err := attest.VerifySNP(evidence, attest.VerifyOptions{
		Now:                   s.now(),
		InsecureTestOnlyRoots: s.cfg.InsecureTestOnlyRoots,
	})
	if err != nil {
		return "", errorf(http.StatusUnauthorized, KindAttestationError, err.Error())
	}
	ev.job = fmt.Sprintf("%x", claims.HostData)
	ev.insecure = claims.TestOnlyRoot
	if err := attest.CheckReportData(claims.ReportData, req.RuntimeData); err != nil {
		return "", errorf(http.StatusUnauthorized, KindAttestationError,
			"REPORT_DATA does not bind this session's runtime-data (SHA-384 of its canonical JSON, then 16 zero bytes)")
	}

	issued := s.now()
	expires := sess.expires
	claimsToken := TokenClaims{
		Claims: jwt.Claims{
			Issuer:    tokenIssuer,
			ID:        sess.id,
			IssuedAt:  jwt.NewNumericDate(issued),
			NotBefore: jwt.NewNumericDate(issued),
			Expiry:    jwt.NewNumericDate(expires),
		},
		TEE:                  sess.tee,
		TEEPubKey:            teeKey,
		TCBStatus:            mustJSON(summarize(claims)),
		EvaluationReport:     mustJSON(map[string]any{"genuine": true, "report_data_bound": true}),
		InsecureTestOnlyRoot: claims.TestOnlyRoot,
	}
	token, err := s.tokens.sign(claimsToken)
	if err != nil {
		return "", fmt.Errorf("signing the token: %w", err)
	}
	s.attestations.put(sess.id, &attestation{
		claims:      claims,
		runtimeData: req.RuntimeData,
		teeKey:      teeKey,
		keyAlg:      keyAlg,
		tee:         sess.tee,
		expires:     expires,
	})
	s.sessions.setToken(sess.id, token)
	return token, nil
}

// decodeJSON decodes one JSON object from r's body of at most maxRequestSize bytes.
func decodeJSON(r *http.Request, v any) error {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxRequestSize+1))
	if err != nil {
		return err
	}
	if len(body) > maxRequestSize {
		return fmt.Errorf("request body exceeds %d bytes", maxRequestSize)
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("trailing data after the JSON object")
	}
	return nil
}
