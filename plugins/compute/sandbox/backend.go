package sandbox

import "fmt"

// chooseBackend picks the tenant's backend and says why.
func chooseBackend(t *Tenant, elf []byte) (backend, string, error) {
	switch t.cfg.Backend {
	case "process":
		b, err := newProcessBackend(t, elf)
		return b, "configured", err
	case "kvm":
		b, err := newKVMBackend(t, elf)
		return b, "configured", err
	case "auto":
		return autoBackend(t, elf)
	}
	return nil, "", fmt.Errorf("unknown backend %q (auto, process, kvm)", t.cfg.Backend)
}

// autoBackend picks kvm when KVM is usable here and a measured guest call
// costs no more than under the process backend (kvmChoice); else process.
func autoBackend(t *Tenant, elf []byte) (backend, string, error) {
	useKVM, why := kvmChoice()
	if useKVM {
		b, err := newKVMBackend(t, elf)
		if err == nil {
			return b, why, nil
		}
		why = "kvm: " + err.Error()
	}
	b, err := newProcessBackend(t, elf)
	return b, why, err
}
