package agent

import (
	"fmt"
	"os"
	"path/filepath"

	"cove.dev/cove/internal/initramfs"
)

// InitramfsSpec lays out the guest's initramfs: the agent as /init, a
// static busybox for the network set-up, the modules of ModuleOrder found
// in modulesDir, and the extra files, such as the job's workload.
func InitramfsSpec(agentPath, busyboxPath, modulesDir string, extra ...initramfs.File) (initramfs.Spec, error) {
	spec := initramfs.Spec{
		Files: []initramfs.File{
			{Path: "/init", Source: agentPath, Mode: 0o755},
			{Path: "/bin/busybox", Source: busyboxPath, Mode: 0o755},
		},
		Dirs:     []string{"/dev", "/proc", "/sys", "/run", "/tmp", "/lib/modules"},
		Symlinks: map[string]string{"/bin/sh": "busybox"},
	}
	found := 0
	for _, name := range ModuleOrder {
		src := filepath.Join(modulesDir, name)
		if _, err := os.Stat(src); err != nil {
			continue
		}
		spec.Files = append(spec.Files, initramfs.File{Path: "/lib/modules/" + name, Source: src, Mode: 0o644})
		found++
	}
	if found == 0 {
		return initramfs.Spec{}, fmt.Errorf("no virtio modules in %s; run test/infra/deps.sh kernel", modulesDir)
	}
	spec.Files = append(spec.Files, extra...)
	return spec, nil
}
