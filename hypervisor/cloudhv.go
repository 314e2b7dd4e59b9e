package hypervisor

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
)

// CloudHypervisorClient calls the REST API that cloud-hypervisor serves on
// the Unix socket given with --api-socket.
type CloudHypervisorClient struct {
	socketPath string
	http       *http.Client
}

// NewCloudHypervisorClient returns a client for the API socket at
// socketPath.
func NewCloudHypervisorClient(socketPath string) *CloudHypervisorClient {
	transport := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var dialer net.Dialer
			return dialer.DialContext(ctx, "unix", socketPath)
		},
		DisableKeepAlives: true,
	}
	return &CloudHypervisorClient{socketPath: socketPath, http: &http.Client{Transport: transport}}
}

// APIError is a response of the Cloud Hypervisor API with a status other
// than the one the call expects. Cloud Hypervisor returns 404 when no VM
// exists and 405 when the VM's state does not allow the call.
type APIError struct {
	Method     string
	Endpoint   string // for example "vm.boot"
	StatusCode int
	Body       string
}

func (e *APIError) Error() string {
	msg := fmt.Sprintf("cloud hypervisor %s %s: %d %s", e.Method, e.Endpoint, e.StatusCode, http.StatusText(e.StatusCode))
	if body := strings.TrimSpace(e.Body); body != "" {
		msg += ": " + body
	}
	return msg
}

// VMMPing is the vmm.ping response.
type VMMPing struct {
	Version      string   `json:"version"`
	BuildVersion string   `json:"build_version,omitempty"`
	PID          int64    `json:"pid,omitempty"`
	Features     []string `json:"features,omitempty"`
}

// VMInfo is the part of the vm.info response that Cove reads.
type VMInfo struct {
	// State is "Created", "Running", "Shutdown", "Paused" or "BreakPoint".
	State string `json:"state"`
	// Config is the VmConfig of the VM as Cloud Hypervisor reports it.
	Config json.RawMessage `json:"config"`
}

// Ping calls vmm.ping.
func (c *CloudHypervisorClient) Ping(ctx context.Context) (VMMPing, error) {
	var ping VMMPing
	err := c.call(ctx, http.MethodGet, "vmm.ping", nil, http.StatusOK, &ping)
	return ping, err
}

// CreateVM checks body with [CheckCloudHypervisorCreateBody] and calls
// vm.create with it. The body is a VmConfig as JSON (see
// [CloudHypervisorCreateBody]).
func (c *CloudHypervisorClient) CreateVM(ctx context.Context, body []byte) error {
	if err := CheckCloudHypervisorCreateBody(body); err != nil {
		return err
	}
	return c.call(ctx, http.MethodPut, "vm.create", body, http.StatusNoContent, nil)
}

// BootVM calls vm.boot.
func (c *CloudHypervisorClient) BootVM(ctx context.Context) error {
	return c.call(ctx, http.MethodPut, "vm.boot", nil, http.StatusNoContent, nil)
}

// VMInfo calls vm.info.
func (c *CloudHypervisorClient) VMInfo(ctx context.Context) (VMInfo, error) {
	var info VMInfo
	err := c.call(ctx, http.MethodGet, "vm.info", nil, http.StatusOK, &info)
	return info, err
}

// ShutdownVM calls vm.shutdown.
func (c *CloudHypervisorClient) ShutdownVM(ctx context.Context) error {
	return c.call(ctx, http.MethodPut, "vm.shutdown", nil, http.StatusNoContent, nil)
}

// DeleteVM calls vm.delete.
func (c *CloudHypervisorClient) DeleteVM(ctx context.Context) error {
	return c.call(ctx, http.MethodPut, "vm.delete", nil, http.StatusNoContent, nil)
}

// ShutdownVMM calls vmm.shutdown, which ends the cloud-hypervisor process.
func (c *CloudHypervisorClient) ShutdownVMM(ctx context.Context) error {
	return c.call(ctx, http.MethodPut, "vmm.shutdown", nil, http.StatusNoContent, nil)
}

// call sends one request and decodes a JSON response into out unless out
// is nil. A status other than want becomes an *APIError.
func (c *CloudHypervisorClient) call(ctx context.Context, method, endpoint string, body []byte, want int, out any) error {
	var reader io.Reader
	if body != nil {
		reader = bytes.NewReader(body)
	}
	// The host name is ignored because the transport always dials the socket.
	req, err := http.NewRequestWithContext(ctx, method, "http://localhost/api/v1/"+endpoint, reader)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")

	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("cloud hypervisor %s %s via %s: %w", method, endpoint, c.socketPath, err)
	}
	defer resp.Body.Close()
	respBody, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("cloud hypervisor %s %s: read the response: %w", method, endpoint, err)
	}
	if resp.StatusCode != want {
		return &APIError{Method: method, Endpoint: endpoint, StatusCode: resp.StatusCode, Body: string(respBody)}
	}
	if out != nil {
		if err := json.Unmarshal(respBody, out); err != nil {
			return fmt.Errorf("cloud hypervisor %s %s: decode the response: %w", method, endpoint, err)
		}
	}
	return nil
}
