"""Card credentials: the HCERT-style container (prefix + Base45(zlib(COSE_Sign1(CWT)))) and its checks."""
