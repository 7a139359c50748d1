package sandbox

import (
	"bytes"
	"os"
	"testing"

	"github.com/edgehost/edgehost/kvm"
)

// kvmUsable skips a test unless KVM is usable here: kvm.Probe succeeds and
// the probe program boots in a VM. With EDGEHOST_KVM_REQUIRE set (CI, where
// /dev/kvm exists) it fails instead.
func kvmUsable(t testing.TB) {
	t.Helper()
	skip := t.Skipf
	if os.Getenv("EDGEHOST_KVM_REQUIRE") != "" {
		skip = t.Fatalf
	}
	if err := kvm.Probe(); err != nil {
		skip("kvm backend not tested: %v", err)
	}
	if _, err := CallCost("kvm"); err != nil {
		skip("kvm backend not tested: KVM is present but the probe program does not run: %v", err)
	}
}

func TestHelloKVM(t *testing.T) {
	kvmUsable(t)
	tn := newTenant(t, "hello", "hello", Settings{Backend: "kvm", Ephemeral: true})
	r, err := get(t, tn, "/a/b?x=1")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(r.Body), "hello from /a/b"; got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
}

func TestHostileKVM(t *testing.T) {
	kvmUsable(t)
	testHostile(t, "kvm")
}

// The same ELF answers byte for byte the same on both backends.
func TestBackendsAgree(t *testing.T) {
	kvmUsable(t)
	for _, c := range []struct{ prog, url string }{
		{"hello", "/x/y?z"}, {"counter", "/"}, {"json", "/items/7"}, {"json", "/items"},
		{"png", "/img?w=33&h=20&c=ff8800"}, {"greet", "/greet/fr"},
	} {
		var bodies [][]byte
		for _, be := range []string{"process", "kvm"} {
			tn := newTenant(t, c.prog, c.prog, Settings{Backend: be, Ephemeral: true, Concurrency: 1})
			r, err := get(t, tn, c.url)
			if err != nil {
				t.Fatalf("%s %s on %s: %v", c.prog, c.url, be, err)
			}
			bodies = append(bodies, append([]byte(r.ContentType+"\n"), r.Body...))
			tn.Close()
		}
		if !bytes.Equal(bodies[0], bodies[1]) {
			t.Errorf("%s %s: process and kvm differ", c.prog, c.url)
		}
	}
}

func TestArgumentsKVM(t *testing.T) {
	kvmUsable(t)
	testArguments(t, "kvm")
}

func TestSecondChanceKVM(t *testing.T) {
	kvmUsable(t)
	testSecondChance(t, "kvm")
}
