// Package kbs is Cove's key broker: it releases the data keys of sealed
// files to guests that prove, with SEV-SNP evidence, that they run the
// job a key was granted to.
//
// The broker speaks the Confidential Containers KBS protocol 0.4.0 under
// /kbs/v0 (auth, attest, resource) and an admin API under /admin/v0. Data
// keys never rest in the broker: each sealed file names its key wrapped by
// a Vault Transit key, and the broker asks Vault to unwrap it only after
// every release rule passed.
//
// # Release rules
//
// A GET of /kbs/v0/resource/cove/<key>/<tag> returns the data key only when
// the session attested with genuine evidence ([attest.VerifySNP]) whose
// REPORT_DATA binds the session's runtime-data, the grant of <key> names a
// policy that accepts the claims ([attest.CheckSNP]), HOST_DATA equals one
// of the grant's job digests, and Vault unwraps the tag. Any error denies.
//
// # Logs
//
// Each attestation and each release decision is one slog event with the
// fields job, tee, resource, verdict and reason. Keys, tokens and Vault's
// responses are never logged; a wrapped key appears only as a SHA-256
// fingerprint.
package kbs

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"time"

	"cove.dev/cove/attest"
)

// ProtocolVersion is the KBS protocol version the broker accepts. The
// version in /kbs/v0/auth must equal it exactly.
const ProtocolVersion = "0.4.0"

// DefaultSessionTTL is how long a session, its nonce and its token stay
// valid when [Config.SessionTTL] is zero, as in the reference broker.
const DefaultSessionTTL = 5 * time.Minute

// Config configures a [Server].
type Config struct {
	// Vault is how the broker reaches Vault Transit.
	Vault VaultConfig
	// AdminTokenFile contains the bearer token of the admin API. Required.
	AdminTokenFile string
	// StateDir contains the policies and grants set through the admin API and
	// the token signing key. Required; created if missing.
	StateDir string
	// PoliciesDir contains read-only policies, one <name>.yaml each, loaded at
	// start. Optional.
	PoliciesDir string
	// SessionTTL bounds the life of a session and its token; zero means
	// DefaultSessionTTL.
	SessionTTL time.Duration
	// InsecureTestOnlyRoots, when not nil, makes the broker trust evidence
	// signed by these test-only roots (the software SEV-SNP device). Every
	// log event and token of such a guest is marked insecure_test_only_root.
	// Never set it in production.
	InsecureTestOnlyRoots *attest.Roots
	// Logger receives the broker's events; nil means slog.Default().
	Logger *slog.Logger
	// Now returns the current time; nil means time.Now. Tests set it.
	Now func() time.Time
}

// Server is the broker. It is an http.Handler; serve it over TLS.
type Server struct {
	cfg        Config
	log        *slog.Logger
	now        func() time.Time
	adminToken []byte
	sessions   *sessionStore
	store      *store
	tokens     *tokenSigner
	vault      *transit
	mux        *http.ServeMux

	// attestations maps a session id to what its attestation verified,
	// for resource requests authorized by that session's token.
	attestations *attestationStore
}

// New checks cfg, reads its files and returns a broker. It does not
// contact Vault: the first request that needs Vault logs in.
func New(cfg Config) (*Server, error) {
	if cfg.SessionTTL == 0 {
		cfg.SessionTTL = DefaultSessionTTL
	}
	if cfg.SessionTTL < 0 {
		return nil, fmt.Errorf("kbs: session TTL %v is negative", cfg.SessionTTL)
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.Default()
	}
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	adminToken, err := readSecretFile(cfg.AdminTokenFile, "admin token")
	if err != nil {
		return nil, fmt.Errorf("kbs: %w", err)
	}
	if len(adminToken) < 16 {
		return nil, fmt.Errorf("kbs: the admin token in %s has %d characters; use at least 16 random characters",
			cfg.AdminTokenFile, len(adminToken))
	}
	st, err := openStore(cfg.StateDir, cfg.PoliciesDir)
	if err != nil {
		return nil, fmt.Errorf("kbs: %w", err)
	}
	tokens, err := loadTokenSigner(filepath.Join(cfg.StateDir, "token-signing-key.pem"))
	if err != nil {
		return nil, fmt.Errorf("kbs: %w", err)
	}
	if cfg.Vault.Address == "" {
		return nil, errors.New("kbs: the Vault address is not configured")
	}
	vault, err := newTransit(cfg.Vault)
	if err != nil {
		return nil, fmt.Errorf("kbs: %w", err)
	}

	s := &Server{
		cfg:          cfg,
		log:          logger,
		now:          now,
		adminToken:   []byte(adminToken),
		sessions:     newSessionStore(cfg.SessionTTL, now),
		store:        st,
		tokens:       tokens,
		vault:        vault,
		attestations: newAttestationStore(now),
	}
	s.mux = s.routes()
	if cfg.InsecureTestOnlyRoots != nil {
		logger.Warn("broker trusts a test-only root: evidence from the software SEV-SNP device is accepted",
			"insecure_test_only_root", true)
	}
	return s, nil
}

func (s *Server) routes() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /kbs/v0/auth", s.handleAuth)
	mux.HandleFunc("POST /kbs/v0/attest", s.handleAttest)
	mux.HandleFunc("GET /kbs/v0/resource/{repository}/{type}/{tag}", s.handleResource)
	mux.HandleFunc("/kbs/v0/resource/", func(w http.ResponseWriter, r *http.Request) {
		writeProblem(w, errorf(http.StatusBadRequest, KindInvalidRequestPath,
			"expected GET /kbs/v0/resource/cove/<key>/<tag>"))
	})

	mux.HandleFunc("POST /admin/v0/keys/{name}", s.admin(s.handleCreateKey))
	mux.HandleFunc("GET /admin/v0/keys/{name}", s.admin(s.handleGetKey))
	mux.HandleFunc("POST /admin/v0/keys/{name}/wrap", s.admin(s.handleWrap))
	mux.HandleFunc("PUT /admin/v0/policies/{name}", s.admin(s.handlePutPolicy))
	mux.HandleFunc("GET /admin/v0/policies/{name}", s.admin(s.handleGetPolicy))
	mux.HandleFunc("PUT /admin/v0/grants/{key}", s.admin(s.handlePutGrant))
	mux.HandleFunc("GET /admin/v0/grants/{key}", s.admin(s.handleGetGrant))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeProblem(w, errorf(http.StatusNotFound, KindNotFound,
			r.Method+" "+r.URL.Path+" is not an endpoint of this broker"))
	})
	return mux
}

// ServeHTTP serves the KBS protocol and the admin API.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mux.ServeHTTP(w, r)
}

// admin wraps an admin handler with the bearer token check.
func (s *Server) admin(h func(http.ResponseWriter, *http.Request) error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || subtle.ConstantTimeCompare([]byte(token), s.adminToken) != 1 {
			s.log.Warn("admin request rejected: missing or wrong admin token",
				"method", r.Method, "path", r.URL.Path, "remote", r.RemoteAddr)
			writeProblem(w, errorf(http.StatusUnauthorized, KindAdminAuth,
				"missing or wrong admin token; send Authorization: Bearer <contents of the broker's admin token file>"))
			return
		}
		if err := h(w, r); err != nil {
			var he *httpError
			if !errors.As(err, &he) {
				he = errorf(http.StatusInternalServerError, KindInternal, err.Error())
			}
			s.log.Warn("admin request failed", "method", r.Method, "path", r.URL.Path,
				"status", he.status, "reason", he.detail)
			writeProblem(w, he)
		}
	}
}

// vaultContext bounds a Vault call made while serving r.
func vaultContext(r *http.Request) (context.Context, context.CancelFunc) {
	return context.WithTimeout(r.Context(), 10*time.Second)
}
