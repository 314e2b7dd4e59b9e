package attest

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"fmt"
	"slices"
)

// AMD's VCEK certificate extensions, from AMD's "Versioned Chip Endorsement
// Key (VCEK) Certificate and KDS Interface Specification". They all sit
// under the arc 1.3.6.1.4.1.3704.1.
var (
	oidAMDArc           = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 3704, 1}
	oidAMDStructVersion = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 3704, 1, 1}
	oidAMDProductName   = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 3704, 1, 2}
	oidAMDBootLoaderSPL = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 3704, 1, 3, 1}
	oidAMDTEESPL        = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 3704, 1, 3, 2}
	oidAMDSNPSPL        = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 3704, 1, 3, 3}
	oidAMDSPL4          = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 3704, 1, 3, 4}
	oidAMDSPL5          = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 3704, 1, 3, 5}
	oidAMDSPL6          = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 3704, 1, 3, 6}
	oidAMDSPL7          = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 3704, 1, 3, 7}
	oidAMDMicrocodeSPL  = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 3704, 1, 3, 8}
	oidAMDFMCSPL        = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 3704, 1, 3, 9}
	oidAMDHWID          = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 3704, 1, 4}
)

// turinHWIDSize is the size of a Turin VCEK's hwID extension. It equals the
// first bytes of the report's CHIP_ID, and the rest of CHIP_ID is zero.
const turinHWIDSize = 8

// turinVCEKExtensions are the AMD extensions of a Turin VCEK certificate.
type turinVCEKExtensions struct {
	// productName is the productName extension, such as "Turin".
	productName string
	// tcb holds the fmcSPL, blSPL, teeSPL, snpSPL and ucodeSPL extensions.
	tcb TCB
	// reservedSPLs holds the spl4 to spl7 extensions that are present,
	// keyed by name. The Turin TCB layout has no place for them.
	reservedSPLs map[string]uint8
	// hwID is the hwID extension, turinHWIDSize bytes.
	hwID []byte
}

// splExtension is one SPL extension of a VCEK. A nil field marks an SPL that
// the Turin TCB layout has no place for.
type splExtension struct {
	oid   asn1.ObjectIdentifier
	name  string
	field *uint8
}

// parseTurinVCEKExtensions reads the AMD extensions of a Turin VCEK. It
// rejects a certificate that lacks a required extension, repeats one, or
// carries one under AMD's arc that the Turin VCEK does not define.
func parseTurinVCEKExtensions(cert *x509.Certificate) (*turinVCEKExtensions, error) {
	exts := &turinVCEKExtensions{reservedSPLs: map[string]uint8{}}
	spls := []splExtension{
		{oidAMDFMCSPL, "fmcSPL", &exts.tcb.FMC},
		{oidAMDBootLoaderSPL, "blSPL", &exts.tcb.BootLoader},
		{oidAMDTEESPL, "teeSPL", &exts.tcb.TEE},
		{oidAMDSNPSPL, "snpSPL", &exts.tcb.SNP},
		{oidAMDMicrocodeSPL, "ucodeSPL", &exts.tcb.Microcode},
		{oidAMDSPL4, "spl4", nil},
		{oidAMDSPL5, "spl5", nil},
		{oidAMDSPL6, "spl6", nil},
		{oidAMDSPL7, "spl7", nil},
	}

	seen := map[string]bool{}
	for _, ext := range cert.Extensions {
		if !isUnderArc(ext.Id, oidAMDArc) {
			continue
		}
		if seen[ext.Id.String()] {
			return nil, fmt.Errorf("the VCEK certificate repeats the extension %s", ext.Id)
		}
		seen[ext.Id.String()] = true

		switch {
		case ext.Id.Equal(oidAMDStructVersion):
			if _, err := parseSPL("structVersion", ext.Value); err != nil {
				return nil, err
			}
		case ext.Id.Equal(oidAMDProductName):
			name, err := parseProductNameExtension(ext.Value)
			if err != nil {
				return nil, err
			}
			exts.productName = name
		case ext.Id.Equal(oidAMDHWID):
			if len(ext.Value) != turinHWIDSize {
				return nil, fmt.Errorf("the VCEK certificate's hwID extension is %d bytes, expected %d for Turin",
					len(ext.Value), turinHWIDSize)
			}
			exts.hwID = slices.Clone(ext.Value)
		default:
			if err := exts.setSPL(ext, spls); err != nil {
				return nil, err
			}
		}
	}

	required := []splExtension{{oid: oidAMDProductName, name: "productName"}, {oid: oidAMDHWID, name: "hwID"}}
	for _, spl := range spls {
		if spl.field != nil {
			required = append(required, spl)
		}
	}
	for _, r := range required {
		if !seen[r.oid.String()] {
			return nil, fmt.Errorf("the VCEK certificate has no %s extension (%s), which a Turin VCEK requires",
				r.name, r.oid)
		}
	}
	return exts, nil
}

// setSPL stores the SPL extension ext in its TCB field or in reservedSPLs,
// and rejects an extension under AMD's arc that is neither.
func (exts *turinVCEKExtensions) setSPL(ext pkix.Extension, spls []splExtension) error {
	for _, spl := range spls {
		if !ext.Id.Equal(spl.oid) {
			continue
		}
		v, err := parseSPL(spl.name, ext.Value)
		if err != nil {
			return err
		}
		if spl.field != nil {
			*spl.field = v
		} else {
			exts.reservedSPLs[spl.name] = v
		}
		return nil
	}
	return fmt.Errorf("the VCEK certificate has the AMD extension %s, which a Turin VCEK does not define", ext.Id)
}

// parseSPL decodes an SPL extension, a DER INTEGER from 0 to 255.
func parseSPL(name string, der []byte) (uint8, error) {
	var v int64
	rest, err := asn1.Unmarshal(der, &v)
	if err != nil {
		return 0, fmt.Errorf("the VCEK certificate's %s extension is not a DER INTEGER: %v", name, err)
	}
	if len(rest) != 0 {
		return 0, fmt.Errorf("the VCEK certificate's %s extension has %d trailing bytes", name, len(rest))
	}
	if v < 0 || v > 255 {
		return 0, fmt.Errorf("the VCEK certificate's %s extension is %d, outside 0 to 255", name, v)
	}
	return uint8(v), nil
}

// parseProductNameExtension decodes the productName extension, a DER IA5String.
func parseProductNameExtension(der []byte) (string, error) {
	var name string
	rest, err := asn1.UnmarshalWithParams(der, &name, "ia5")
	if err != nil {
		return "", fmt.Errorf("the VCEK certificate's productName extension is not a DER IA5String: %v", err)
	}
	if len(rest) != 0 {
		return "", fmt.Errorf("the VCEK certificate's productName extension has %d trailing bytes", len(rest))
	}
	return name, nil
}

// isUnderArc reports whether oid lies strictly below arc.
func isUnderArc(oid, arc asn1.ObjectIdentifier) bool {
	return len(oid) > len(arc) && slices.Equal(oid[:len(arc)], arc)
}
