package measurements

import (
	"encoding/binary"
	"testing"
)

func TestCPUIDSignatureOfQEMUModels(t *testing.T) {
	tests := []struct {
		model                 string
		family, mod, stepping int
		want                  uint32
	}{
		{"EPYC-v4", 23, 1, 2, SignatureEPYC},
		{"EPYC-Rome", 23, 49, 0, SignatureEPYCRome},
		{"EPYC-Milan", 25, 1, 1, SignatureEPYCMilan},
		{"EPYC-Genoa", 25, 17, 0, SignatureEPYCGenoa},
		{"EPYC-Turin", 26, 0, 0, SignatureEPYCTurin},
	}

	for _, tt := range tests {
		t.Run(tt.model, func(t *testing.T) {
			got, err := CPUIDSignature(tt.family, tt.mod, tt.stepping)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("CPUIDSignature(%d, %d, %d) = %#08x, want %#08x",
					tt.family, tt.mod, tt.stepping, got, tt.want)
			}

			byName, err := QEMUModelSignature(tt.model)
			if err != nil {
				t.Fatal(err)
			}
			if byName != tt.want {
				t.Errorf("QEMUModelSignature(%q) = %#08x, want %#08x", tt.model, byName, tt.want)
			}
		})
	}
}

func TestCPUIDSignatureNumbers(t *testing.T) {
	tests := []struct {
		name      string
		got, want uint32
	}{
		{"SignatureEPYC", SignatureEPYC, 0x00800F12},
		{"SignatureEPYCRome", SignatureEPYCRome, 0x00830F10},
		{"SignatureEPYCMilan", SignatureEPYCMilan, 0x00A00F11},
		{"SignatureEPYCGenoa", SignatureEPYCGenoa, 0x00A10F10},
		{"SignatureEPYCTurin", SignatureEPYCTurin, 0x00B00F00},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%s = %#08x, want %#08x", tt.name, tt.got, tt.want)
		}
	}

	// A stepping-1 Genoa host, as seen with -cpu host.
	if got, _ := CPUIDSignature(25, 17, 1); got != 0x00A10F11 {
		t.Errorf("CPUIDSignature(25, 17, 1) = %#08x, want 0x00A10F11", got)
	}
}

func TestCPUIDSignatureRejectsOutOfRange(t *testing.T) {
	tests := []struct{ family, model, stepping int }{
		{-1, 0, 0}, {0x10F, 0, 0}, {25, 256, 0}, {25, 1, 16},
	}
	for _, tt := range tests {
		if _, err := CPUIDSignature(tt.family, tt.model, tt.stepping); err == nil {
			t.Errorf("CPUIDSignature(%d, %d, %d) returned no error", tt.family, tt.model, tt.stepping)
		}
	}
}

func TestQEMUModelSignatureUnknownModel(t *testing.T) {
	if sig, err := QEMUModelSignature("Opteron_G5"); err == nil {
		t.Errorf("QEMUModelSignature(Opteron_G5) = %#x, want an error", sig)
	}
}

func TestVMSAResetState(t *testing.T) {
	page := make([]byte, pageSize)
	le := binary.LittleEndian

	tests := []struct {
		name        string
		eip         uint32
		csBase, rip uint64
	}{
		{"BSP at reset vector", bspResetEIP, 0xFFFF0000, 0xFFF0},
		{"AP at Debian reset block", 0x0080B004, 0x00800000, 0xB004},
	}

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			putVMSA(page, tt.eip, SignatureEPYC, 0x21)

			fields := []struct {
				name string
				got  uint64
				want uint64
			}{
				{"cs.selector", uint64(le.Uint16(page[vmsaCS:])), 0xF000},
				{"cs.attrib", uint64(le.Uint16(page[vmsaCS+segmentAttribOffset:])), 0x9B},
				{"cs.limit", uint64(le.Uint32(page[vmsaCS+segmentLimitOffset:])), 0xFFFF},
				{"cs.base", le.Uint64(page[vmsaCS+segmentBaseOffset:]), tt.csBase},
				{"ds.attrib", uint64(le.Uint16(page[vmsaDS+segmentAttribOffset:])), 0x93},
				{"tr.attrib", uint64(le.Uint16(page[vmsaTR+segmentAttribOffset:])), 0x8B},
				{"ldtr.attrib", uint64(le.Uint16(page[vmsaLDTR+segmentAttribOffset:])), 0x82},
				{"gdtr.limit", uint64(le.Uint32(page[vmsaGDTR+segmentLimitOffset:])), 0xFFFF},
				{"rip", le.Uint64(page[vmsaRIP:]), tt.rip},
				{"efer", le.Uint64(page[vmsaEFER:]), 0x1000},
				{"cr0", le.Uint64(page[vmsaCR0:]), 0x10},
				{"cr4", le.Uint64(page[vmsaCR4:]), 0x40},
				{"dr6", le.Uint64(page[vmsaDR6:]), 0xFFFF0FF0},
				{"rdx", le.Uint64(page[vmsaRDX:]), 0x00800F12},
				{"sev_features", le.Uint64(page[vmsaSEVFeatures:]), 0x21},
				{"g_pat", le.Uint64(page[vmsaGPAT:]), 0x0007040600070406},
				{"mxcsr", uint64(le.Uint32(page[vmsaMXCSR:])), 0x1F80},
				{"x87_fcw", uint64(le.Uint16(page[vmsaX87FCW:])), 0x37F},
			}
			for _, f := range fields {
				if f.got != f.want {
					t.Errorf("%s = %#x, want %#x", f.name, f.got, f.want)
				}
			}
		})
	}
}
