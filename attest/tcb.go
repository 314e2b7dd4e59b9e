package attest

import "fmt"

// TCB is one TCB_VERSION of a report, decoded into its security patch
// levels (SPLs).
//
// The byte layout depends on the product line. Milan and Genoa put the boot
// loader SPL in byte 0, TEE in byte 1, SNP in byte 6 and microcode in byte 7.
// Turin puts the FMC SPL in byte 0, boot loader in byte 1, TEE in byte 2,
// SNP in byte 3 and microcode in byte 7.
type TCB struct {
	// FMC is the SPL of the firmware's first mutable code. Only Turin has
	// it, so it is zero on Milan and Genoa.
	FMC uint8
	// BootLoader is the SPL of the AMD secure processor's boot loader.
	BootLoader uint8
	// TEE is the SPL of the AMD secure processor's operating system.
	TEE uint8
	// SNP is the SPL of the SEV-SNP firmware.
	SNP uint8
	// Microcode is the SPL of the CPU microcode.
	Microcode uint8
	// Raw is the TCB_VERSION as stored in the report (a little-endian
	// uint64). [EncodeTCB] and comparisons ignore it.
	Raw uint64
}

// DecodeTCB decodes a raw TCB_VERSION with the layout of productLine
// ("Milan", "Genoa" or "Turin").
func DecodeTCB(productLine string, raw uint64) (TCB, error) {
	b := func(i int) uint8 { return uint8(raw >> (8 * i)) }
	switch productLine {
	case "Milan", "Genoa":
		return TCB{BootLoader: b(0), TEE: b(1), SNP: b(6), Microcode: b(7), Raw: raw}, nil
	case "Turin":
		return TCB{FMC: b(0), BootLoader: b(1), TEE: b(2), SNP: b(3), Microcode: b(7), Raw: raw}, nil
	}
	return TCB{}, fmt.Errorf("cannot decode TCB_VERSION %#016x: unknown product line %q", raw, productLine)
}

// EncodeTCB returns the raw TCB_VERSION of t in the layout of productLine.
// It returns an error when t sets FMC for a product line without it.
func EncodeTCB(productLine string, t TCB) (uint64, error) {
	put := func(v uint8, i int) uint64 { return uint64(v) << (8 * i) }
	switch productLine {
	case "Milan", "Genoa":
		if t.FMC != 0 {
			return 0, fmt.Errorf("%s has no FMC SPL, but the TCB sets it to %d", productLine, t.FMC)
		}
		return put(t.BootLoader, 0) | put(t.TEE, 1) | put(t.SNP, 6) | put(t.Microcode, 7), nil
	case "Turin":
		return put(t.FMC, 0) | put(t.BootLoader, 1) | put(t.TEE, 2) | put(t.SNP, 3) | put(t.Microcode, 7), nil
	}
	return 0, fmt.Errorf("cannot encode TCB: unknown product line %q", productLine)
}

// String formats t as its named SPLs.
func (t TCB) String() string {
	return fmt.Sprintf("fmc=%d bl=%d tee=%d snp=%d ucode=%d", t.FMC, t.BootLoader, t.TEE, t.SNP, t.Microcode)
}

// tcbComponent is one SPL of a TCB with its rule name.
type tcbComponent struct {
	rule  string
	value uint8
}

// components lists t's SPLs with the rule names that CheckSNP uses.
func (t TCB) components() []tcbComponent {
	return []tcbComponent{
		{"tcb.fmc", t.FMC},
		{"tcb.boot_loader", t.BootLoader},
		{"tcb.tee", t.TEE},
		{"tcb.snp", t.SNP},
		{"tcb.microcode", t.Microcode},
	}
}

// atMost reports whether every SPL of t is at most the same SPL of u.
func (t TCB) atMost(u TCB) bool {
	tc, uc := t.components(), u.components()
	for i := range tc {
		if tc[i].value > uc[i].value {
			return false
		}
	}
	return true
}
