// Package client is the guest side of the KBS protocol 0.4.0 as Cove's
// broker (cove.dev/cove/kbs) serves it.
//
// A guest creates a [Client] for the broker's URL, calls [Client.Attest]
// with a function that returns SEV-SNP evidence for a given REPORT_DATA,
// then fetches each sealed input's data key with [Client.Resource], and
// finally calls [Client.Close] to erase the ephemeral key.
//
// The client generates one ephemeral EC P-256 key per attestation and sends
// its public half as the runtime-data's tee-pubkey. The broker encrypts
// every resource to it as a flattened RFC 7516 JWE; [DecryptResponse]
// rejects the legacy form of protocol versions before 0.2.0.
package client

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"cove.dev/cove/attest"
)

// ProtocolVersion is the KBS protocol version the client announces.
const ProtocolVersion = "0.4.0"

// sessionCookie is the cookie that carries the KBS session id.
const sessionCookie = "kbs-session-id"

// maxResponseSize bounds what the client reads from the broker.
const maxResponseSize = 1 << 20

// EvidenceFunc returns the primary_evidence for a report whose REPORT_DATA
// is reportData: for SEV-SNP, the JSON of an attest.SNPEvidence.
type EvidenceFunc func(reportData [64]byte) (json.RawMessage, error)

// Options configures a [Client].
type Options struct {
	// CACertPEM contains the PEM certificates of the CAs that the broker's TLS
	// certificate must chain to. Nil means the system roots.
	CACertPEM []byte
	// TEE is the tee announced in /kbs/v0/auth; empty means "snp".
	TEE string
	// Timeout bounds each HTTP request; zero means 30 seconds.
	Timeout time.Duration
	// HTTPClient, when set, replaces the client built from CACertPEM and
	// Timeout.
	HTTPClient *http.Client
}

// Client talks to one broker. Its methods are safe for concurrent use
// after [Client.Attest] returned.
type Client struct {
	base *url.URL
	http *http.Client
	tee  string
	// ownsHTTP is true when the client built http itself, so Close may
	// close its idle connections.
	ownsHTTP bool

	mu    sync.Mutex
	key   *ecdsa.PrivateKey
	token string
}

// New returns a client for the broker at brokerURL, for example
// "https://10.0.2.100:8443".
func New(brokerURL string, opts Options) (*Client, error) {
	base, err := url.Parse(strings.TrimSuffix(brokerURL, "/"))
	if err != nil || base.Host == "" || (base.Scheme != "https" && base.Scheme != "http") {
		return nil, fmt.Errorf("kbs client: invalid broker URL %q: use https://HOST:PORT",
			brokerURL)
	}
	httpClient := opts.HTTPClient
	ownsHTTP := httpClient == nil
	if ownsHTTP {
		httpClient, err = newHTTPClient(opts)
		if err != nil {
			return nil, err
		}
	}
	tee := opts.TEE
	if tee == "" {
		tee = "snp"
	}
	return &Client{base: base, http: httpClient, tee: tee, ownsHTTP: ownsHTTP}, nil
}

func newHTTPClient(opts Options) (*http.Client, error) {
	tlsConfig := &tls.Config{MinVersion: tls.VersionTLS12}
	if opts.CACertPEM != nil {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(opts.CACertPEM) {
			return nil, errors.New("kbs client: the CA certificate PEM contains no certificate")
		}
		tlsConfig.RootCAs = pool
	}
	timeout := opts.Timeout
	if timeout == 0 {
		timeout = 30 * time.Second
	}
	transport := &http.Transport{TLSClientConfig: tlsConfig, ForceAttemptHTTP2: true}
	return &http.Client{Transport: transport, Timeout: timeout}, nil
}

// Attest runs the KBS handshake: /kbs/v0/auth for a nonce, then
// /kbs/v0/attest with runtime-data {nonce, tee-pubkey} and the evidence
// that evidence returns for the REPORT_DATA binding that runtime-data. On
// success the client keeps the attestation token and the ephemeral key
// for [Client.Resource]. Attest replaces the key of an earlier attestation.
func (c *Client) Attest(ctx context.Context, evidence EvidenceFunc) error {
	nonce, cookie, err := c.auth(ctx)
	if err != nil {
		return err
	}

	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	runtimeData, err := json.Marshal(map[string]any{
		"nonce": nonce,
		"tee-pubkey": jose.JSONWebKey{
			Key:       &key.PublicKey,
			Algorithm: string(jose.ECDH_ES_A256KW),
		},
	})
	if err != nil {
		zeroize(key)
		return err
	}
	reportData, err := attest.ReportData(json.RawMessage(runtimeData))
	if err != nil {
		zeroize(key)
		return err
	}
	primary, err := evidence(reportData)
	if err != nil {
		zeroize(key)
		return fmt.Errorf("kbs client: getting evidence: %w", err)
	}

	body, err := json.Marshal(map[string]any{
		"runtime-data": json.RawMessage(runtimeData),
		"tee-evidence": map[string]any{
			"primary_evidence":    primary,
			"additional_evidence": "",
		},
	})
	if err != nil {
		zeroize(key)
		return err
	}
	var response struct {
		Token string `json:"token"`
	}
	if err := c.post(ctx, "/kbs/v0/attest", cookie, body, &response); err != nil {
		zeroize(key)
		return err
	}
	if response.Token == "" {
		zeroize(key)
		return errors.New("kbs client: /kbs/v0/attest returned no token")
	}

	c.mu.Lock()
	defer c.mu.Unlock()
	if c.key != nil {
		zeroize(c.key)
	}
	c.key = key
	c.token = response.Token
	return nil
}

func (c *Client) auth(ctx context.Context) (nonce string, cookie *http.Cookie, err error) {
	body, err := json.Marshal(map[string]any{
		"version":      ProtocolVersion,
		"tee":          c.tee,
		"extra-params": map[string]any{},
	})
	if err != nil {
		return "", nil, err
	}
	req, err := c.newRequest(ctx, http.MethodPost, "/kbs/v0/auth", body)
	if err != nil {
		return "", nil, err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return "", nil, fmt.Errorf("kbs client: /kbs/v0/auth: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", nil, readProblem(resp, "/kbs/v0/auth", "")
	}
	var challenge struct {
		Nonce string `json:"nonce"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxResponseSize)).Decode(&challenge); err != nil {
		return "", nil, fmt.Errorf("kbs client: invalid challenge from /kbs/v0/auth: %w", err)
	}
	for _, ck := range resp.Cookies() {
		if ck.Name == sessionCookie {
			cookie = ck
		}
	}
	if challenge.Nonce == "" || cookie == nil {
		return "", nil, errors.New("kbs client: /kbs/v0/auth returned no nonce or no kbs-session-id cookie")
	}
	return challenge.Nonce, cookie, nil
}

// Resource fetches the resource at path ("cove/<key>/<tag>", as a sealed
// file's header names it) and returns its plaintext, decrypted with the
// ephemeral key. A rejection by the broker is returned as a [*ResourceError].
func (c *Client) Resource(ctx context.Context, path string) ([]byte, error) {
	path = strings.TrimPrefix(path, "/")
	if err := checkResourcePath(path); err != nil {
		return nil, err
	}
	c.mu.Lock()
	key, token := c.key, c.token
	c.mu.Unlock()
	if key == nil {
		return nil, fmt.Errorf("kbs client: resource %s requested before a successful Attest (or after Close)",
			path)
	}

	req, err := c.newRequest(ctx, http.MethodGet, "/kbs/v0/resource/"+path, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("kbs client: resource %s: %w", path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, readProblem(resp, "/kbs/v0/resource/"+path, path)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseSize))
	if err != nil {
		return nil, fmt.Errorf("kbs client: resource %s: reading the response: %w", path, err)
	}

	c.mu.Lock()
	defer c.mu.Unlock()
	if c.key != key {
		return nil, fmt.Errorf("kbs client: resource %s: the client was closed or attested again meanwhile",
			path)
	}
	plaintext, err := DecryptResponse(body, key)
	if err != nil {
		return nil, fmt.Errorf("kbs client: resource %s: %w", path, err)
	}
	return plaintext, nil
}

func checkResourcePath(path string) error {
	parts := strings.Split(path, "/")
	if len(parts) != 3 {
		return fmt.Errorf("kbs client: invalid resource path %q: expected REPOSITORY/TYPE/TAG",
			path)
	}
	for _, p := range parts {
		if p == "" || p == "." || p == ".." {
			return fmt.Errorf("kbs client: invalid resource path %q: empty, '.' or '..' element",
				path)
		}
	}
	return nil
}

// Token returns the attestation token of the last successful [Client.Attest].
func (c *Client) Token() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.token
}

// Close erases the ephemeral private key and forgets the token, so later
// resource requests fail. It also closes the idle connections of an HTTP
// client that New built.
//
// NOTE: Close overwrites the key's scalar in place, but copies that Go's
// crypto packages make while decrypting are beyond its reach.
func (c *Client) Close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.key != nil {
		zeroize(c.key)
	}
	c.key = nil
	c.token = ""
	if c.ownsHTTP {
		c.http.CloseIdleConnections()
	}
}

func zeroize(key *ecdsa.PrivateKey) {
	if key.D != nil {
		clear(key.D.Bits())
		key.D.SetInt64(0)
	}
}

func (c *Client) post(ctx context.Context, path string, cookie *http.Cookie, body []byte, out any) error {
	req, err := c.newRequest(ctx, http.MethodPost, path, body)
	if err != nil {
		return err
	}
	req.AddCookie(&http.Cookie{Name: cookie.Name, Value: cookie.Value})
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("kbs client: %s: %w", path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return readProblem(resp, path, "")
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxResponseSize)).Decode(out); err != nil {
		return fmt.Errorf("kbs client: invalid response from %s: %w", path, err)
	}
	return nil
}

func (c *Client) newRequest(ctx context.Context, method, path string, body []byte) (*http.Request, error) {
	var reader io.Reader
	if body != nil {
		reader = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base.String()+path, reader)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	return req, nil
}
