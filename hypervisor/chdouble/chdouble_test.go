package chdouble_test

import (
	"strings"
	"testing"

	"cove.dev/cove/hypervisor/chdouble"
)

func TestSpecLoads(t *testing.T) {
	doc, err := chdouble.Spec()
	if err != nil {
		t.Fatal(err)
	}
	if doc.Paths.Find("/vm.create") == nil {
		t.Fatal("spec has no /vm.create path")
	}
}

func TestValidateVMConfig(t *testing.T) {
	tests := []struct {
		name  string
		body  string
		valid bool
	}{
		{"kernel payload", `{"payload": {"kernel": "/vmlinuz"}, "cpus": {"boot_vcpus": 1, "max_vcpus": 1}, "memory": {"size": 134217728}}`, true},
		{"payload missing", `{"memory": {"size": 134217728}}`, false},
		{"memory size as string", `{"payload": {"kernel": "/k"}, "memory": {"size": "128M"}}`, false},
		{"zero boot vcpus", `{"payload": {"kernel": "/k"}, "cpus": {"boot_vcpus": 0, "max_vcpus": 1}}`, false},
		{"unknown console mode", `{"payload": {"kernel": "/k"}, "serial": {"mode": "Pipe"}}`, false},
		{"vsock cid 2", `{"payload": {"kernel": "/k"}, "vsock": {"cid": 2, "socket": "/v.sock"}}`, false},
		{"not JSON", `{"payload":`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := chdouble.ValidateVMConfig([]byte(tt.body))
			if tt.valid && err != nil {
				t.Fatalf("valid body rejected: %v", err)
			}
			if !tt.valid && err == nil {
				t.Fatal("invalid body accepted")
			}
		})
	}
}

func TestPowerOffMovesRunningToShutdown(t *testing.T) {
	server, err := chdouble.Listen(t.TempDir() + "/api.sock")
	if err != nil {
		t.Fatal(err)
	}
	defer server.Close()
	server.PowerOff()
	if got := server.State(); got != "" {
		t.Fatalf("PowerOff without a VM left state %q, want none", got)
	}
	if !strings.HasSuffix(server.SocketPath(), "api.sock") {
		t.Errorf("SocketPath = %q, want the listening path", server.SocketPath())
	}
}
