"""The rules of a place (ward escort gate, vaccination desk) that sit beside the verification itself:
entry limits kept from the gate's own records, staff overrides."""
