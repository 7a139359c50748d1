// Package kvm runs static x86-64 Linux ELF programs in tiny KVM virtual
// machines and resets them to a snapshot cheaply.
//
// Placeholder; the full package comment is written with the API.
package kvm
