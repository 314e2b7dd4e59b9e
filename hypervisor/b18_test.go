package hypervisor_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"cove.dev/cove/hypervisor"
)

// hostDataCase is one vm.create body with a host_data variant and the
// behaviour expected from Cove and from Cloud Hypervisor (as of ae44c29).
type hostDataCase struct {
	file         string
	coveAccepts  bool
	createStatus int // vm.create status from Cloud Hypervisor
	bootStatus   int // vm.boot status after a successful vm.create
	errorText    string
}

var hostDataCases = []hostDataCase{
	{"B18-vmcreate-snp-hostdata-valid.json", true, http.StatusNoContent, http.StatusNoContent, ""},
	{"B18-vmcreate-snp-hostdata-60-hex-chars.json", false, http.StatusBadRequest, 0, "InvalidHostData"},
	{"B18-vmcreate-snp-hostdata-64-chars-not-hex.json", false, http.StatusNoContent, http.StatusInternalServerError, "FailedToDecodeHostData"},
	{"B18-vmcreate-snp-hostdata-empty-string.json", false, http.StatusBadRequest, 0, "InvalidHostData"},
	{"B18-vmcreate-hostdata-without-platform-sev_snp.json", false, http.StatusNoContent, http.StatusNoContent, ""},
}

func TestHostDataCasesAreAllCovered(t *testing.T) {
	raw, err := os.ReadFile("testdata/B18-expected-ch-behaviour.json")
	if err != nil {
		t.Fatal(err)
	}
	var expected map[string]string
	if err := json.Unmarshal(raw, &expected); err != nil {
		t.Fatal(err)
	}
	if len(expected) != len(hostDataCases) {
		t.Errorf("expected-behaviour file lists %d bodies, the table has %d", len(expected), len(hostDataCases))
	}
	for _, c := range hostDataCases {
		if _, ok := expected[c.file]; !ok {
			t.Errorf("%s is not in the expected-behaviour file", c.file)
		}
	}
}

func TestHostDataCheckedBeforeCloudHypervisor(t *testing.T) {
	for _, c := range hostDataCases {
		t.Run(c.file, func(t *testing.T) {
			body := readCase(t, c.file)
			err := hypervisor.CheckCloudHypervisorCreateBody(body)
			if c.coveAccepts && err != nil {
				t.Fatalf("Cove rejected a valid body: %v", err)
			}
			if !c.coveAccepts && err == nil {
				t.Fatal("Cove accepted the body, want a rejection before Cloud Hypervisor is called")
			}

			// The client must not send a body that Cove rejects.
			server, client := startDouble(t)
			err = client.CreateVM(t.Context(), body)
			if c.coveAccepts != (err == nil) {
				t.Fatalf("CreateVM returned %v, want accepted=%v", err, c.coveAccepts)
			}
			if !c.coveAccepts && len(server.Requests()) != 0 {
				t.Errorf("client sent %v for a rejected body, want no request", server.Requests())
			}
		})
	}
}

func TestHostDataValidCaseRoundTrips(t *testing.T) {
	var body struct {
		Payload struct {
			HostData string `json:"host_data"`
		} `json:"payload"`
	}
	if err := json.Unmarshal(readCase(t, "B18-vmcreate-snp-hostdata-valid.json"), &body); err != nil {
		t.Fatal(err)
	}
	hostData, err := hypervisor.ParseHostData(body.Payload.HostData)
	if err != nil {
		t.Fatal(err)
	}
	if len(hostData) != 32 || hostData[0] != 0x24 || hostData[31] != 0xb2 {
		t.Fatalf("ParseHostData = %x, want the 32 bytes 243e...a1b2", hostData)
	}
	cfg := validConfig(t)
	cfg.TEE, cfg.HostData = hypervisor.TEESNP, hostData
	created, err := hypervisor.CloudHypervisorCreateBody(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(created), `"host_data": "`+body.Payload.HostData+`"`) {
		t.Errorf("create body does not carry host_data %s:\n%s", body.Payload.HostData, created)
	}
}

func TestHostDataCasesInDouble(t *testing.T) {
	for _, c := range hostDataCases {
		t.Run(c.file, func(t *testing.T) {
			server, _ := startDouble(t)
			raw := rawClient(server.SocketPath())
			status, text := put(t, raw, "vm.create", readCase(t, c.file))
			if status != c.createStatus {
				t.Fatalf("vm.create status %d (%s), want %d", status, text, c.createStatus)
			}
			if c.bootStatus != 0 {
				status, text = put(t, raw, "vm.boot", nil)
				if status != c.bootStatus {
					t.Fatalf("vm.boot status %d (%s), want %d", status, text, c.bootStatus)
				}
			}
			if c.errorText != "" && !strings.Contains(text, c.errorText) {
				t.Errorf("error %q does not name %s", text, c.errorText)
			}
		})
	}
}

func readCase(t *testing.T, name string) []byte {
	t.Helper()
	body, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return body
}

// rawClient sends requests to the socket without Cove's own checks.
func rawClient(socket string) *http.Client {
	return &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var dialer net.Dialer
			return dialer.DialContext(ctx, "unix", socket)
		},
	}}
}

func put(t *testing.T, client *http.Client, endpoint string, body []byte) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPut, "http://localhost/api/v1/"+endpoint, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	text, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.TrimSpace(string(text))
}
