package server

import (
	"errors"
	"fmt"
	"net/http"
	"testing"

	"github.com/edgehost/edgehost/host/backend"
	"github.com/edgehost/edgehost/host/pluginhost"
)

func TestStatusFor(t *testing.T) {
	mismatch := NewStatusError(http.StatusBadGateway, errors.New("segment mismatch"))
	for _, tt := range []struct {
		err  error
		want int
	}{
		{NewStatusError(http.StatusNotFound, errors.New("no route")), http.StatusNotFound},
		{fmt.Errorf("wrapped: %w", mismatch), http.StatusBadGateway},
		{&StartOver{Err: mismatch}, http.StatusBadGateway},
		{fmt.Errorf("slicer: %w", pluginhost.ErrUnavailable), http.StatusServiceUnavailable},
		{backend.ErrFirstByteTimeout, http.StatusGatewayTimeout},
		{errors.New("anything else"), http.StatusBadGateway},
	} {
		if got := statusFor(tt.err); got != tt.want {
			t.Errorf("statusFor(%v) = %d, want %d", tt.err, got, tt.want)
		}
	}
	if got := (&StatusError{Status: 400, Err: errors.New("bad")}).Error(); got != "bad" {
		t.Errorf("StatusError text %q: the log must read as the error it wraps", got)
	}
}
