"""Check the FP16 rounding kernel (kaiyuan_nb.fp16) against torch's float16 conversion on every one of the
2^32 float32 bit patterns: the rounded values bit for bit (NaN as NaN), and max |x|, new infs and flushed
non-zeros on each block. Run it after any change to `_ROUND_KERNEL_C` or `_KERNEL_FLAGS`; it takes a few
minutes on two cores (one CPU-heavy job: nothing else should run). Usage: python tools/fp16_kernel_exhaustive.py"""
import sys
import time

import torch

import kaiyuan_nb.fp16 as fp16

BLOCK = 1 << 26  # bit patterns per block (256 MiB of float32)


def check_block(kernel, start: int) -> None:
    "Compare kernel and torch on the bit patterns start .. start + BLOCK - 1 (as signed int32)."
    x = torch.arange(start, start + BLOCK, dtype=torch.int64).to(torch.int32).view(torch.float32)
    by_torch, by_kernel = torch.empty_like(x), torch.empty_like(x)
    expected = fp16._torch_round_into(x, by_torch, True, fp16.ROUND_CHUNK)
    got = fp16._kernel_round_into(kernel, x, by_kernel, True)
    nan = torch.isnan(by_torch)
    same_bits = torch.equal(nan, torch.isnan(by_kernel)) and torch.equal(
        by_torch.view(torch.int32)[~nan], by_kernel.view(torch.int32)[~nan])
    if not same_bits or got != expected:
        sys.exit(f"block starting at bit pattern {start:#010x}: values equal {same_bits}, "
                 f"kernel measured {got}, torch {expected}")


def main() -> int:
    kernel = fp16.fp16_round_kernel()
    if kernel is None:
        sys.exit("the C kernel is not available here (needs x86-64 with AVX2 and a C compiler)")
    from tqdm.auto import tqdm
    t0 = time.perf_counter()
    for start in tqdm(range(-2 ** 31, 2 ** 31, BLOCK), desc="bit patterns", unit="block"):
        check_block(kernel, start)
    print(f"all 2^32 float32 bit patterns: same bits and counts as torch ({time.perf_counter() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
