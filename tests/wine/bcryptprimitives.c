/*
 * A stand-in for Windows' bcryptprimitives.dll, for running kiln's Windows
 * build under Wine 8 (Debian 12), which lacks that DLL. Rust's standard
 * library (since 1.78) takes its random bytes (HashMap seeds, temporary file
 * names) from ProcessPrng there; this one asks RtlGenRandom instead. It is
 * put beside a copy of kiln.exe for the tests only, never shipped.
 */
#include <windows.h>
#define SystemFunction036 NTAPI SystemFunction036
#include <ntsecapi.h>
#undef SystemFunction036

BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len)
{
    while (len > 0) {
        ULONG n = len > 0x10000000 ? 0x10000000 : (ULONG)len;
        if (!RtlGenRandom(data, n))
            return FALSE;
        data += n;
        len -= n;
    }
    return TRUE;
}
