package kbs

import (
	"crypto"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strings"

	"cove.dev/cove/attest"
)

// resourceRepository is the repository element of every Cove resource path.
const resourceRepository = "cove"

// dataKeySize is the size in bytes of a data key, the only plaintext the
// broker releases.
const dataKeySize = 32

// wrappedKeyPattern is the form of a Vault Transit ciphertext.
var wrappedKeyPattern = regexp.MustCompile(`^vault:v[0-9]+:[A-Za-z0-9+/]+={0,2}$`)

// releaseEvent collects the fields of the one log event of a release decision.
type releaseEvent struct {
	resource    string
	key         string
	tee         string
	job         string
	fingerprint string
	insecure    bool
	failed      []string
}

func (s *Server) handleResource(w http.ResponseWriter, r *http.Request) {
	// The GET pattern also matches HEAD, which would run the whole release,
	// Vault included, and log it as allowed for a response without a body.
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", http.MethodGet)
		writeProblem(w, errorf(http.StatusMethodNotAllowed, KindInvalidRequest,
			r.Method+" is not allowed on a resource; use GET"))
		return
	}
	// The tag encodes the wrapped key, so the log names the resource by
	// repository and key, and the tag by its fingerprint.
	ev := releaseEvent{resource: r.PathValue("repository") + "/" + r.PathValue("type")}
	body, err := s.release(r, &ev)

	attrs := []any{"resource", ev.resource, "key", ev.key, "tee", ev.tee, "job", ev.job,
		"wrapped_key_sha256", ev.fingerprint}
	if ev.insecure {
		attrs = append(attrs, "insecure_test_only_root", true)
	}
	if err != nil {
		var he *httpError
		if !errors.As(err, &he) {
			he = errorf(http.StatusInternalServerError, KindInternal, "release failed")
			s.log.Error("release failed with an internal error", "resource", ev.resource, "error", err)
		}
		attrs = append(attrs, "verdict", "deny", "reason", he.detail)
		if len(ev.failed) > 0 {
			attrs = append(attrs, "failed_rules", ev.failed)
		}
		s.log.Info("release", attrs...)
		writeProblem(w, he)
		return
	}
	s.log.Info("release", append(attrs, "verdict", "allow", "reason", "all release rules passed")...)
	w.Header().Set("Content-Type", "application/jwe")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write(body)
}

// release applies the release rules in order and returns the JWE of the
// data key. Vault is called only after every other rule passed.
func (s *Server) release(r *http.Request, ev *releaseEvent) ([]byte, error) {
	if r.PathValue("repository") != resourceRepository {
		return nil, errorf(http.StatusNotFound, KindResourceNotFound,
			fmt.Sprintf("repository %q does not exist; Cove resources are cove/<key>/<tag>", r.PathValue("repository")))
	}
	key, tag := r.PathValue("type"), r.PathValue("tag")
	ev.key = key
	if err := checkName("key", key); err != nil {
		return nil, errorf(http.StatusBadRequest, KindInvalidRequestPath, err.Error())
	}
	wrapped, err := decodeTag(tag)
	if err != nil {
		return nil, errorf(http.StatusBadRequest, KindInvalidRequestPath, err.Error())
	}
	ev.fingerprint = fingerprint(wrapped)

	a, err := s.authorize(r)
	if err != nil {
		return nil, err
	}
	ev.tee = a.tee
	ev.job = hex.EncodeToString(a.claims.HostData[:])
	ev.insecure = a.claims.TestOnlyRoot

	grant, ok := s.store.grant(key)
	if !ok {
		return nil, errorf(http.StatusNotFound, KindResourceNotFound,
			fmt.Sprintf("key %q has no grant; an operator must grant it to a job first", key))
	}
	policy, ok := s.store.policy(grant.Policy)
	if !ok {
		ev.failed = []string{"policy"}
		return nil, errorf(http.StatusForbidden, KindPolicyDeny,
			fmt.Sprintf("the grant of key %q names policy %q, which does not exist", key, grant.Policy))
	}

	verdict, err := s.evaluate(a, grant, policy)
	if err != nil {
		return nil, err
	}
	if !verdict.Allow {
		for _, f := range verdict.Failed {
			ev.failed = append(ev.failed, f.Rule)
		}
		return nil, errorf(http.StatusForbidden, KindPolicyDeny,
			fmt.Sprintf("policy %q denies key %q: %s", grant.Policy, key, strings.TrimPrefix(verdict.String(), "deny: ")))
	}

	ctx, cancel := vaultContext(r)
	defer cancel()
	dataKey, err := s.vault.Unwrap(ctx, key, wrapped)
	switch {
	case errors.Is(err, ErrWrappedKeyInvalid):
		return nil, errorf(http.StatusNotFound, KindResourceNotFound,
			fmt.Sprintf("Vault cannot unwrap this tag with transit key %q: the key or the wrapped key does not exist", key))
	case err != nil:
		return nil, errorf(http.StatusServiceUnavailable, KindVaultUnavailable,
			"Vault is unavailable ("+strings.TrimPrefix(err.Error(), ErrVaultUnavailable.Error()+": ")+"); retry later")
	}
	defer clear(dataKey)
	// Transit decrypts any ciphertext of the key, so a tag could wrap
	// something other than a data key, such as a secret that another
	// application encrypted with the same Transit key.
	if len(dataKey) != dataKeySize {
		return nil, errorf(http.StatusNotFound, KindResourceNotFound, fmt.Sprintf(
			"this tag of transit key %q does not wrap a %d-byte data key", key, dataKeySize))
	}

	body, err := encryptResource(a.teeKey, a.keyAlg, dataKey)
	if err != nil {
		return nil, fmt.Errorf("encrypting the data key to the tee-pubkey: %w", err)
	}
	return body, nil
}

// evaluate checks the claims against the policy, with HOST_DATA expected
// to be one of the grant's job digests and REPORT_DATA the binding of the
// session's runtime-data. Every failed rule is in the verdict.
func (s *Server) evaluate(a *attestation, grant Grant, policy *Policy) (attest.Verdict, error) {
	ref := policy.Reference
	ref.AllowTestOnlyRoot = ref.AllowTestOnlyRoot && s.cfg.InsecureTestOnlyRoots != nil

	reportData, err := attest.ReportData(a.runtimeData)
	if err != nil {
		return attest.Verdict{}, err
	}
	ref.ReportData = reportData

	matched := false
	for _, d := range grant.JobDigests {
		digest, err := hex.DecodeString(d)
		if err != nil || len(digest) != 32 {
			continue
		}
		if subtle.ConstantTimeCompare(digest, a.claims.HostData[:]) == 1 {
			ref.HostData = [32]byte(digest)
			matched = true
		}
	}
	if !matched {
		// Let CheckSNP report every other rule; the HOST_DATA rule is
		// reported here against the whole list of job digests.
		ref.HostData = a.claims.HostData
	}

	verdict := attest.CheckSNP(a.claims, ref)
	if !matched {
		var failed []attest.FailedRule
		for _, f := range verdict.Failed {
			if f.Rule != "host_data" {
				failed = append(failed, f)
			}
		}
		detail := fmt.Sprintf("HOST_DATA %x is not one of the grant's job digests %s",
			a.claims.HostData, strings.Join(grant.JobDigests, ", "))
		if a.claims.HostData == [32]byte{} {
			detail = "HOST_DATA is all zero, so the guest was launched without a job digest"
		}
		failed = append([]attest.FailedRule{{Rule: "host_data", Detail: detail}}, failed...)
		verdict = attest.Verdict{Allow: false, Failed: failed}
	}
	return verdict, nil
}

// authorize returns the attestation behind the request's bearer token or
// session cookie, after verifying the token.
func (s *Server) authorize(r *http.Request) (*attestation, error) {
	token, hasBearer := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !hasBearer {
		cookie, err := r.Cookie(sessionCookie)
		if err != nil {
			return nil, errorf(http.StatusUnauthorized, KindTokenNotFound,
				"no attestation token: send Authorization: Bearer <token> or the kbs-session-id cookie of an attested session")
		}
		var reason string
		token, reason = s.sessions.token(cookie.Value)
		if reason != "" {
			return nil, errorf(http.StatusUnauthorized, KindTokenNotFound, reason)
		}
	}
	claims, err := s.tokens.verify(strings.TrimSpace(token), s.now())
	if err != nil {
		return nil, errorf(http.StatusUnauthorized, KindInvalidToken, err.Error()+"; attest again")
	}
	// NOTE: a token works only on the broker process that issued it, within
	// its session's lifetime, because the verified claims stay in memory
	// here: attest.SNPClaims keeps the verified report in an unexported field.
	a, ok := s.attestations.get(claims.ID)
	if !ok {
		return nil, errorf(http.StatusUnauthorized, KindInvalidToken,
			"the token's session is unknown to this broker (expired, or the broker restarted); attest again")
	}
	if !a.teeKey.Valid() || !publicKeysEqual(a, claims) {
		return nil, errorf(http.StatusUnauthorized, KindInvalidToken,
			"the token's tee-pubkey does not match its session")
	}
	return a, nil
}

func publicKeysEqual(a *attestation, claims *TokenClaims) bool {
	want, err := a.teeKey.Thumbprint(crypto.SHA256)
	if err != nil {
		return false
	}
	got, err := claims.TEEPubKey.Thumbprint(crypto.SHA256)
	if err != nil {
		return false
	}
	return subtle.ConstantTimeCompare(want, got) == 1
}

// decodeTag returns the wrapped key in a resource tag: base64url without
// padding of a Vault Transit ciphertext.
func decodeTag(tag string) (string, error) {
	raw, err := base64.RawURLEncoding.DecodeString(tag)
	if err != nil {
		return "", errors.New("the resource tag is not base64url without padding")
	}
	wrapped := string(raw)
	if !wrappedKeyPattern.MatchString(wrapped) {
		return "", errors.New("the resource tag does not decode to a Vault Transit ciphertext (vault:v<N>:...)")
	}
	return wrapped, nil
}

// fingerprint returns the first 16 hex characters of the SHA-256 of a
// wrapped key, to name it in logs without logging it.
func fingerprint(wrapped string) string {
	sum := sha256.Sum256([]byte(wrapped))
	return hex.EncodeToString(sum[:8])
}
