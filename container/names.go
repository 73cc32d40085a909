package container

import (
	"crypto/rand"
	"math/big"
	"os"
	"path/filepath"
)

// Random names for containers made without --name, as Docker gives them:
// an adjective and a noun (these from a harbour).
var (
	nameAdjectives = []string{
		"amber", "brave", "brisk", "calm", "clever", "cosy", "crisp", "daring", "deft", "eager",
		"fair", "fleet", "gentle", "glad", "golden", "hardy", "hushed", "jolly", "keen", "kind",
		"lively", "loyal", "lucid", "mellow", "merry", "nimble", "noble", "patient", "plucky", "proud",
		"quick", "quiet", "rapid", "ready", "serene", "sharp", "snug", "spry", "steady", "sturdy",
		"sunny", "swift", "tidy", "trusty", "vivid", "warm", "wary", "wise", "witty", "zesty",
	}
	nameNouns = []string{
		"anchor", "barge", "beacon", "bollard", "buoy", "cable", "capstan", "channel", "cove", "crane",
		"current", "davit", "dinghy", "dock", "ferry", "fjord", "galley", "gangway", "harbour", "hawser",
		"helm", "hull", "inlet", "jetty", "keel", "ketch", "lagoon", "lighthouse", "lock", "mast",
		"mooring", "pier", "pilot", "quay", "reef", "rigging", "rudder", "sail", "schooner", "shoal",
		"slipway", "sloop", "spar", "stern", "tide", "tugboat", "wake", "wharf", "winch", "yawl",
	}
)

func pick(list []string) string {
	n, _ := rand.Int(rand.Reader, big.NewInt(int64(len(list))))
	return list[n.Int64()]
}

// freeName returns a random name no container has; the global lock is held.
func (e *Engine) freeName() string {
	for i := 0; ; i++ {
		name := pick(nameAdjectives) + "_" + pick(nameNouns)
		if i > 20 {
			name += "_" + newID()[:4]
		}
		if _, err := os.Stat(filepath.Join(e.namesDir(), name)); err != nil {
			return name
		}
	}
}
