package kbs

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	"go.yaml.in/yaml/v3"

	"cove.dev/cove/attest"
)

// Policy is a release policy: the reference values that the claims of
// SEV-SNP evidence must meet before a key named by a grant is released.
// Its YAML form is
//
//	measurements:                 # required; MEASUREMENT, 96 hex characters each
//	  - 6d2878...
//	allow_debug: false            # accept the DEBUG guest policy bit
//	allow_migration_agent: false  # accept the MIGRATE_MA guest policy bit
//	min_tcb:                      # minimum SPLs of REPORTED_TCB; 0 or absent sets none
//	  fmc: 0
//	  boot_loader: 3
//	  tee: 0
//	  snp: 8
//	  microcode: 115
//	min_guest_svn: 0
//	vmpl: 0                       # required VMPL; absent accepts any
//	insecure_allow_test_only_root: false
//
// HOST_DATA and REPORT_DATA are not part of a policy: the grant names the
// job digests, and the session fixes the runtime-data.
type Policy struct {
	// Source is the YAML text the policy was parsed from.
	Source []byte
	// Reference contains the parsed reference values, without HostData and
	// ReportData.
	Reference attest.ReferenceValues
}

type policyYAML struct {
	Measurements        []string `yaml:"measurements"`
	AllowDebug          bool     `yaml:"allow_debug"`
	AllowMigrationAgent bool     `yaml:"allow_migration_agent"`
	MinTCB              struct {
		FMC        uint8 `yaml:"fmc"`
		BootLoader uint8 `yaml:"boot_loader"`
		TEE        uint8 `yaml:"tee"`
		SNP        uint8 `yaml:"snp"`
		Microcode  uint8 `yaml:"microcode"`
	} `yaml:"min_tcb"`
	MinGuestSVN uint32  `yaml:"min_guest_svn"`
	VMPL        *uint32 `yaml:"vmpl"`
	// InsecureAllowTestOnlyRoot accepts evidence from the software SEV-SNP
	// device; it takes effect only on a broker started with
	// insecure_trust_test_only_root.
	InsecureAllowTestOnlyRoot bool `yaml:"insecure_allow_test_only_root"`
}

// ParsePolicy parses and validates a policy in YAML. Unknown fields are
// errors, so a misspelled rule never goes unnoticed.
func ParsePolicy(data []byte) (*Policy, error) {
	var raw policyYAML
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&raw); err != nil {
		return nil, fmt.Errorf("invalid policy YAML: %v", err)
	}
	if len(raw.Measurements) == 0 {
		return nil, errors.New("policy lists no measurements; add the expected MEASUREMENT values (96 hex characters each)")
	}
	if raw.VMPL != nil && *raw.VMPL > 3 {
		return nil, fmt.Errorf("policy vmpl %d is invalid; VMPLs are 0 to 3", *raw.VMPL)
	}

	ref := attest.ReferenceValues{
		AllowDebug:          raw.AllowDebug,
		AllowMigrationAgent: raw.AllowMigrationAgent,
		MinTCB: attest.TCB{
			FMC:        raw.MinTCB.FMC,
			BootLoader: raw.MinTCB.BootLoader,
			TEE:        raw.MinTCB.TEE,
			SNP:        raw.MinTCB.SNP,
			Microcode:  raw.MinTCB.Microcode,
		},
		MinGuestSVN:       raw.MinGuestSVN,
		VMPL:              raw.VMPL,
		AllowTestOnlyRoot: raw.InsecureAllowTestOnlyRoot,
	}
	for i, m := range raw.Measurements {
		b, err := hex.DecodeString(strings.TrimSpace(m))
		if err != nil || len(b) != 48 {
			return nil, fmt.Errorf("policy measurements[%d] %q is not 96 hex characters (48 bytes)",
				i, m)
		}
		ref.Measurements = append(ref.Measurements, [48]byte(b))
	}
	return &Policy{Source: data, Reference: ref}, nil
}
