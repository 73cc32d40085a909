package registry

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"

	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// ManifestInspect returns an image's manifest (or index) as the registry
// serves it, indented, as docker manifest inspect prints it.
func (cl *Client) ManifestInspect(ctx context.Context, s string) ([]byte, error) {
	ref, err := cl.Reference(s)
	if err != nil {
		return nil, err
	}
	rt, err := cl.transport(ctx, ref.Context(), transport.PullScope)
	if err != nil {
		return nil, fmt.Errorf("manifest inspect %s: %w", ref.Name(), err)
	}
	m, err := cl.manifest(ctx, ref.Context(), ref.Identifier(), rt)
	if err != nil {
		return nil, fmt.Errorf("manifest inspect %s: %w", ref.Name(), err)
	}
	var out bytes.Buffer
	if err := json.Indent(&out, m.Bytes, "", "   "); err != nil {
		return m.Bytes, nil
	}
	return out.Bytes(), nil
}
