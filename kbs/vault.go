package kbs

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	vault "github.com/hashicorp/vault/api"
)

// ErrVaultUnavailable marks a Vault call that failed because Vault did not
// respond, responded 5xx (sealed, standby, overloaded) or rejected the
// broker's login. The broker returns 503 for such requests.
var ErrVaultUnavailable = errors.New("vault unavailable")

// ErrWrappedKeyInvalid marks a wrapped key that Vault cannot unwrap with
// the named Transit key: the key does not exist or the ciphertext is not
// one of its ciphertexts.
var ErrWrappedKeyInvalid = errors.New("wrapped key invalid for this transit key")

// VaultConfig is how the broker reaches Vault Transit.
type VaultConfig struct {
	// Address is Vault's URL, for example "https://127.0.0.1:8200".
	Address string
	// CACertFile is a PEM file of CAs for Vault's TLS certificate. Empty
	// uses the system roots.
	CACertFile string
	// RoleIDFile and SecretIDFile hold the AppRole role id and secret id
	// the broker logs in with. The broker never uses a root token.
	RoleIDFile   string
	SecretIDFile string
	// TransitMount is the Transit engine's mount path; empty means "transit".
	TransitMount string
	// Timeout bounds each Vault request; zero means 3 seconds. Keep it
	// short: a guest waits for the broker while the broker waits for Vault.
	Timeout time.Duration
}

// transit is the broker's Vault Transit client. It logs in with AppRole
// on first use, logs in again when its token nears expiry or Vault
// rejects it (after a restart or a revocation), and retries once on a
// fresh connection when a pooled connection turns out to be dead.
type transit struct {
	client    *vault.Client
	login     *vault.Client
	transport *http.Transport
	mount     string
	roleID    string
	secretID  string

	// unwraps counts Unwrap calls, so tests can assert that a denied
	// release never reached Vault.
	unwraps atomic.Int64

	mu       sync.Mutex
	renewAt  time.Time
	loggedIn bool
}

func newTransit(c VaultConfig) (*transit, error) {
	roleID, err := readSecretFile(c.RoleIDFile, "AppRole role id")
	if err != nil {
		return nil, err
	}
	secretID, err := readSecretFile(c.SecretIDFile, "AppRole secret id")
	if err != nil {
		return nil, err
	}

	config := vault.DefaultConfig()
	if config.Error != nil {
		return nil, fmt.Errorf("vault client configuration: %w", config.Error)
	}
	config.Address = c.Address
	config.MaxRetries = 0
	config.Timeout = c.Timeout
	if config.Timeout == 0 {
		config.Timeout = 3 * time.Second
	}
	// DefaultConfig applies VAULT_* variables such as VAULT_SKIP_VERIFY and
	// VAULT_CACERT. The broker's trust in Vault comes from its own
	// configuration only, so the TLS settings start over here.
	transport := config.HttpClient.Transport.(*http.Transport)
	transport.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	transport.ResponseHeaderTimeout = config.Timeout
	if c.CACertFile != "" {
		if err := config.ConfigureTLS(&vault.TLSConfig{CACert: c.CACertFile}); err != nil {
			return nil, fmt.Errorf("vault CA file %s: %w", c.CACertFile, err)
		}
	}
	client, err := vault.NewClient(config)
	if err != nil {
		return nil, fmt.Errorf("vault client for %s: %w", c.Address, err)
	}
	// NewClient takes VAULT_TOKEN from the environment; the broker uses
	// only the token of its own AppRole login.
	client.ClearToken()
	client.ClearNamespace()
	login, err := client.Clone()
	if err != nil {
		return nil, err
	}
	login.ClearToken()

	mount := strings.Trim(c.TransitMount, "/")
	if mount == "" {
		mount = "transit"
	}
	return &transit{
		client:    client,
		login:     login,
		transport: transport,
		mount:     mount,
		roleID:    roleID,
		secretID:  secretID,
	}, nil
}

func readSecretFile(path, what string) (string, error) {
	if path == "" {
		return "", fmt.Errorf("the %s file is not configured", what)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("reading the %s file: %w", what, err)
	}
	s := strings.TrimSpace(string(b))
	if s == "" {
		return "", fmt.Errorf("the %s file %s is empty", what, path)
	}
	return s, nil
}

// CreateKey creates the Transit key name (AES-256-GCM96, not exportable).
// Creating a key that exists is not an error.
func (t *transit) CreateKey(ctx context.Context, name string) error {
	_, err := t.write(ctx, t.mount+"/keys/"+name, map[string]any{"type": "aes256-gcm96"})
	return err
}

// KeyExists reports whether the Transit key name exists.
func (t *transit) KeyExists(ctx context.Context, name string) (bool, error) {
	secret, err := t.do(ctx, func(c *vault.Client) (*vault.Secret, error) {
		return c.Logical().ReadWithContext(ctx, t.mount+"/keys/"+name)
	})
	if err != nil {
		return false, err
	}
	return secret != nil, nil
}

// Wrap encrypts dataKey with the Transit key name and returns Vault's
// ciphertext ("vault:v1:...").
func (t *transit) Wrap(ctx context.Context, name string, dataKey []byte) (string, error) {
	secret, err := t.write(ctx, t.mount+"/encrypt/"+name, map[string]any{
		"plaintext": base64.StdEncoding.EncodeToString(dataKey),
	})
	if err != nil {
		return "", err
	}
	ciphertext, _ := dataField(secret, "ciphertext")
	if ciphertext == "" {
		return "", fmt.Errorf("%w: transit encrypt returned no ciphertext", ErrVaultUnavailable)
	}
	return ciphertext, nil
}

// Unwrap decrypts wrappedKey with the Transit key name and returns the
// data key.
func (t *transit) Unwrap(ctx context.Context, name, wrappedKey string) ([]byte, error) {
	t.unwraps.Add(1)
	secret, err := t.write(ctx, t.mount+"/decrypt/"+name, map[string]any{"ciphertext": wrappedKey})
	if err != nil {
		return nil, err
	}
	encoded, _ := dataField(secret, "plaintext")
	dataKey, err := base64.StdEncoding.DecodeString(encoded)
	if err != nil || len(dataKey) == 0 {
		return nil, fmt.Errorf("%w: transit decrypt returned no valid plaintext",
			ErrWrappedKeyInvalid)
	}
	return dataKey, nil
}

func (t *transit) write(ctx context.Context, path string, body map[string]any) (*vault.Secret, error) {
	return t.do(ctx, func(c *vault.Client) (*vault.Secret, error) {
		return c.Logical().WriteWithContext(ctx, path, body)
	})
}

// do runs call with a valid token. It logs in again once when Vault
// rejects the token, and retries once on a new connection when the
// request failed without an HTTP response. Transit encrypt, decrypt, read
// and create are safe to repeat.
func (t *transit) do(ctx context.Context, call func(*vault.Client) (*vault.Secret, error)) (*vault.Secret, error) {
	client, err := t.authorized(ctx, false)
	if err != nil {
		return nil, err
	}
	secret, err := call(client)
	if isDeadConnection(ctx, err) {
		t.transport.CloseIdleConnections()
		secret, err = call(client)
	}
	if isPermissionDenied(err) {
		client, err = t.authorized(ctx, true)
		if err != nil {
			return nil, err
		}
		secret, err = call(client)
	}
	return secret, classify(err)
}

// authorized returns the client after making sure it carries a current
// token: it logs in when there is none, when the token is past half its
// lifetime, or when force is set because Vault rejected the token.
func (t *transit) authorized(ctx context.Context, force bool) (*vault.Client, error) {
	t.mu.Lock()
	defer t.mu.Unlock()

	if t.loggedIn && !force && time.Now().Before(t.renewAt) {
		return t.client, nil
	}
	secret, err := t.login.Logical().WriteWithContext(ctx, "auth/approle/login", map[string]any{
		"role_id":   t.roleID,
		"secret_id": t.secretID,
	})
	if isDeadConnection(ctx, err) {
		t.transport.CloseIdleConnections()
		secret, err = t.login.Logical().WriteWithContext(ctx, "auth/approle/login", map[string]any{
			"role_id":   t.roleID,
			"secret_id": t.secretID,
		})
	}
	if err != nil {
		t.loggedIn = false
		return nil, fmt.Errorf("%w: AppRole login failed: %s", ErrVaultUnavailable, describe(err))
	}
	if secret == nil || secret.Auth == nil || secret.Auth.ClientToken == "" {
		t.loggedIn = false
		return nil, fmt.Errorf("%w: AppRole login returned no token", ErrVaultUnavailable)
	}
	t.client.SetToken(secret.Auth.ClientToken)
	lifetime := time.Duration(secret.Auth.LeaseDuration) * time.Second
	t.renewAt = time.Now().Add(lifetime / 2)
	t.loggedIn = true
	return t.client, nil
}

func dataField(secret *vault.Secret, name string) (string, bool) {
	if secret == nil {
		return "", false
	}
	s, ok := secret.Data[name].(string)
	return s, ok
}

// isTransportError reports whether err came without an HTTP response from
// Vault (refused, reset, timed out).
func isTransportError(err error) bool {
	if err == nil {
		return false
	}
	var resp *vault.ResponseError
	return !errors.As(err, &resp)
}

// isDeadConnection reports whether a request failed without an HTTP
// response and without timing out, as it does on a pooled connection that
// Vault closed when it restarted. A timeout is not retried: Vault is
// frozen or overloaded, and the guest should not wait twice.
func isDeadConnection(ctx context.Context, err error) bool {
	return isTransportError(err) && ctx.Err() == nil && !isTimeout(err)
}

func isTimeout(err error) bool {
	var netErr interface{ Timeout() bool }
	return errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &netErr) && netErr.Timeout())
}

// isPermissionDenied reports whether Vault responded 403, which it does for
// an unknown or expired token.
func isPermissionDenied(err error) bool {
	var resp *vault.ResponseError
	return errors.As(err, &resp) && resp.StatusCode == http.StatusForbidden
}

// classify maps a Vault error to ErrWrappedKeyInvalid (Vault responded 400:
// no such key, or a ciphertext it cannot decrypt) or ErrVaultUnavailable
// (everything else).
func classify(err error) error {
	if err == nil {
		return nil
	}
	var resp *vault.ResponseError
	if errors.As(err, &resp) && resp.StatusCode == http.StatusBadRequest {
		return fmt.Errorf("%w: %s", ErrWrappedKeyInvalid, describe(err))
	}
	return fmt.Errorf("%w: %s", ErrVaultUnavailable, describe(err))
}

// describe summarizes a Vault error without Vault's response body, which
// the broker never logs: the HTTP status, or the kind of transport failure.
func describe(err error) string {
	var resp *vault.ResponseError
	if errors.As(err, &resp) {
		return fmt.Sprintf("Vault responded %d %s", resp.StatusCode, http.StatusText(resp.StatusCode))
	}
	if isTimeout(err) {
		return "request to Vault timed out"
	}
	return "no response from Vault"
}
