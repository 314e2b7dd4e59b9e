package kbs

import (
	"bytes"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestAdminRequiresToken(t *testing.T) {
	b := startBroker(t, brokerOptions{})
	for _, header := range []string{"", "Bearer wrong-token-0123456789", testAdminToken} {
		req, _ := http.NewRequest(http.MethodGet, b.https.URL+"/admin/v0/grants/demo", nil)
		if header != "" {
			req.Header.Set("Authorization", header)
		}
		resp, err := b.httpClient().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("Authorization %q: status %d, want 401", header, resp.StatusCode)
		}
	}
}

func TestAdminRejectsInvalidInput(t *testing.T) {
	b := startBroker(t, brokerOptions{})
	zero := strings.Repeat("0", 64)
	cases := []struct {
		name, method, path, body string
	}{
		{"all-zero job digest", http.MethodPut, "/admin/v0/grants/demo", `{"policy":"demo","job_digests":["` + zero + `"]}`},
		{"short job digest", http.MethodPut, "/admin/v0/grants/demo", `{"policy":"demo","job_digests":["abcd"]}`},
		{"no job digest", http.MethodPut, "/admin/v0/grants/demo", `{"policy":"demo","job_digests":[]}`},
		{"unknown policy", http.MethodPut, "/admin/v0/grants/demo", `{"policy":"nope","job_digests":["` + strings.Repeat("1", 64) + `"]}`},
		{"policy with unknown field", http.MethodPut, "/admin/v0/policies/p2", "measurements: [\"" + strings.Repeat("ab", 48) + "\"]\nallow_debugging: true\n"},
		{"policy without measurements", http.MethodPut, "/admin/v0/policies/p2", "allow_debug: false\n"},
		{"data key of 16 bytes", http.MethodPost, "/admin/v0/keys/demo/wrap", `{"data_key":"AAAAAAAAAAAAAAAAAAAAAA=="}`},
		{"invalid key name", http.MethodPost, "/admin/v0/keys/..%2Fetc", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(tc.method, b.https.URL+tc.path, strings.NewReader(tc.body))
			req.Header.Set("Authorization", "Bearer "+testAdminToken)
			resp, err := b.httpClient().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusBadRequest {
				t.Errorf("status %d, want 400", resp.StatusCode)
			}
		})
	}
}

func TestStateSurvivesBrokerRestart(t *testing.T) {
	b := startBroker(t, brokerOptions{})
	restarted, err := New(b.server.cfg)
	if err != nil {
		t.Fatal(err)
	}

	grant, ok := restarted.store.grant("demo")
	if !ok {
		t.Fatal("grant of key demo lost across a restart")
	}
	if grant.Policy != "demo" || len(grant.JobDigests) != 1 {
		t.Errorf("grant after restart = %+v", grant)
	}
	policy, ok := restarted.store.policy("demo")
	if !ok {
		t.Fatal("policy demo lost across a restart")
	}
	if !bytes.Equal(policy.Source, []byte(testPolicyYAML())) {
		t.Errorf("policy source after restart = %q", policy.Source)
	}
	leftovers, _ := filepath.Glob(filepath.Join(b.server.cfg.StateDir, "*", ".*tmp*"))
	if len(leftovers) != 0 {
		t.Errorf("temporary files left in the state folder: %v", leftovers)
	}
}

func TestPoliciesDirLoaded(t *testing.T) {
	b := startBroker(t, brokerOptions{})
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "fromdir.yaml"), []byte(testPolicyYAML()), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := b.server.cfg
	cfg.PoliciesDir = dir
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := s.store.policy("fromdir"); !ok {
		t.Error("policy fromdir.yaml of the policies folder not loaded")
	}
}

func TestRepositoryPoliciesParse(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join("..", "policies", "*.yaml"))
	if len(files) == 0 {
		t.Skip("no policies in ../policies")
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ParsePolicy(data); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
}
