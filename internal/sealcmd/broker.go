package sealcmd

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"cove.dev/cove/internal/cafile"
	"cove.dev/cove/internal/sealed"
)

// Limits on what Seal reads from files and from the broker.
const (
	maxTokenFileSize   = 64 << 10
	maxResponseSize    = 64 << 10
	wrapRequestTimeout = 60 * time.Second
)

// brokerClient calls the broker's admin API.
type brokerClient struct {
	base  *url.URL
	token string
	http  *http.Client
}

// newBrokerClient returns a client of the broker at base that sends the
// token read from tokenFile, if not empty, and trusts the CA certificates in
// caFile, or the system roots if caFile is empty.
func newBrokerClient(base *url.URL, tokenFile, caFile string) (*brokerClient, error) {
	var token string
	if tokenFile != "" {
		var err error
		token, err = readToken(tokenFile)
		if err != nil {
			return nil, err
		}
	}

	tlsConfig, err := cafile.TLSConfig(caFile)
	if err != nil {
		return nil, err
	}

	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.TLSClientConfig = tlsConfig
	client := &http.Client{
		Transport: transport,
		Timeout:   wrapRequestTimeout,
		// A redirect would send the token and the data key to a URL that
		// the user did not pass.
		CheckRedirect: func(req *http.Request, _ []*http.Request) error {
			return fmt.Errorf("broker redirected to %s; pass the final URL with --kbs", req.URL.Redacted())
		},
	}
	return &brokerClient{base: base, token: token, http: client}, nil
}

func readToken(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("reading --token-file: %w", err)
	}
	defer f.Close()

	raw, err := io.ReadAll(io.LimitReader(f, maxTokenFileSize+1))
	if err != nil {
		return "", fmt.Errorf("reading --token-file: %w", err)
	}
	if len(raw) > maxTokenFileSize {
		return "", fmt.Errorf("--token-file %s is larger than %d bytes; it must contain only the token", path, maxTokenFileSize)
	}

	token := strings.TrimSpace(string(raw))
	if token == "" {
		return "", fmt.Errorf("--token-file %s is empty", path)
	}
	if strings.ContainsAny(token, " \t\r\n") {
		return "", fmt.Errorf("--token-file %s contains more than one line or word; it must contain only the token", path)
	}
	return token, nil
}

// wrap sends dataKey to POST {base}/admin/v0/keys/{keyName}/wrap and
// returns the Transit ciphertext from the response.
func (c *brokerClient) wrap(ctx context.Context, keyName string, dataKey []byte) (string, error) {
	endpoint := c.base.JoinPath("admin", "v0", "keys", keyName, "wrap")

	// The body is built by hand, rather than with encoding/json, so that
	// the only copy of the encoded key is this buffer, which is zeroed below.
	const prefix, suffix = `{"data_key":"`, `"}`
	body := make([]byte, len(prefix)+base64.StdEncoding.EncodedLen(len(dataKey))+len(suffix))
	defer clear(body)
	copy(body, prefix)
	base64.StdEncoding.Encode(body[len(prefix):], dataKey)
	copy(body[len(body)-len(suffix):], suffix)

	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint.String(), bytes.NewReader(body))
	if err != nil {
		return "", fmt.Errorf("building wrap request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}

	resp, err := c.http.Do(req)
	if err != nil {
		return "", fmt.Errorf("requesting the broker to wrap the data key: %w", err)
	}
	defer resp.Body.Close()

	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseSize+1))
	if err != nil {
		return "", fmt.Errorf("reading the broker's wrap response: %w", err)
	}
	if len(raw) > maxResponseSize {
		return "", fmt.Errorf("broker's wrap response is larger than %d bytes", maxResponseSize)
	}
	if resp.StatusCode != http.StatusOK {
		return "", wrapStatusError(resp.StatusCode, keyName, c.token != "", raw)
	}

	var answer struct {
		WrappedKey string `json:"wrapped_key"`
	}
	if err := json.Unmarshal(raw, &answer); err != nil {
		return "", fmt.Errorf("broker's wrap response is not valid JSON: %w", err)
	}
	if err := sealed.ValidateWrappedKey(answer.WrappedKey); err != nil {
		return "", fmt.Errorf("broker's wrap response: field wrapped_key: %w", err)
	}
	return answer.WrappedKey, nil
}

// wrapStatusError describes a failed wrap request, with the detail of an
// RFC 7807 problem body if the broker sent one.
func wrapStatusError(status int, keyName string, sentToken bool, body []byte) error {
	var problem struct {
		Type   string `json:"type"`
		Detail string `json:"detail"`
	}
	detail := ""
	if json.Unmarshal(body, &problem) == nil && problem.Detail != "" {
		detail = ": " + problem.Detail
	}

	msg := fmt.Sprintf("broker rejected the wrap request with %d %s%s", status, http.StatusText(status), detail)
	switch status {
	case http.StatusUnauthorized, http.StatusForbidden:
		if sentToken {
			return errors.New(msg + "; check that --token-file contains the broker's admin token")
		}
		return errors.New(msg + "; pass the broker's admin token with --token-file")
	case http.StatusNotFound:
		return fmt.Errorf("%s; create the Transit key first with POST /admin/v0/keys/%s", msg, keyName)
	case http.StatusServiceUnavailable:
		return errors.New(msg + "; the broker cannot reach Vault, retry later")
	}
	return errors.New(msg)
}
