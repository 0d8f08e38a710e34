//! How glibc's malloc is told to keep the memory that every inference uses
//! again, set once at start-up before any thread exists.
//!
//! Each inference allocates and frees the same few megabytes of tensors.
//! With glibc's defaults, freed blocks above a threshold go back to the
//! kernel, as does the free top of a heap once it passes a second one, and
//! the next inference faults the same pages in again, each cleared by the
//! kernel: about 1,100 page faults an upload under a whole class and 750 for
//! one student alone, who then waits 2 ms longer (`scripts/load-test`, which
//! counts the worker's faults). With the thresholds fixed high, a few dozen.
//!
//! glibc also gives threads heaps of their own, up to eight per core, and
//! the worker's memory crept up by 13% over 10,000 uploads as threads met new
//! ones; two heaps hold it flat.
//!
//! An administrator's `MALLOC_ARENA_MAX`, `MALLOC_MMAP_THRESHOLD_` or
//! `MALLOC_TRIM_THRESHOLD_` in the environment wins over the value here.

/// Heaps shared by all threads.
const ARENA_MAX: i32 = 2;

/// Blocks at least this large are mapped on their own and unmapped when
/// freed: only whole decoded photos of many megapixels, whose memory should
/// go back at once.
const MMAP_THRESHOLD_BYTES: i32 = 32 << 20;

/// Free memory at the top of a heap beyond this goes back to the kernel.
const TRIM_THRESHOLD_BYTES: i32 = 64 << 20;

/// Applies the settings above; call it first thing in `main`. Elsewhere than
/// on glibc it does nothing.
pub fn keep_memory_for_reuse() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        set_unless_in_environment("MALLOC_ARENA_MAX", libc::M_ARENA_MAX, ARENA_MAX);
        set_unless_in_environment(
            "MALLOC_MMAP_THRESHOLD_",
            libc::M_MMAP_THRESHOLD,
            MMAP_THRESHOLD_BYTES,
        );
        set_unless_in_environment(
            "MALLOC_TRIM_THRESHOLD_",
            libc::M_TRIM_THRESHOLD,
            TRIM_THRESHOLD_BYTES,
        );
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn set_unless_in_environment(variable: &str, parameter: libc::c_int, value: i32) {
    if std::env::var_os(variable).is_some() {
        return;
    }
    // SAFETY: mallopt only changes malloc's own settings, under malloc's
    // lock. It returns 0 for a value it refuses, which leaves glibc's
    // default: slower, never wrong, so nothing is said.
    unsafe {
        libc::mallopt(parameter, value);
    }
}

#[cfg(all(test, target_os = "linux", target_env = "gnu"))]
mod tests {
    /// A block the size of a tensor comes from a heap, where it waits for the
    /// next inference once freed. With glibc's defaults it would be mapped on
    /// its own (over 128 KiB, until such blocks have been seen freed) and
    /// handed back to the kernel when freed.
    #[test]
    fn a_tensor_sized_block_is_not_mapped_on_its_own() {
        super::keep_memory_for_reuse();

        // SAFETY: mallinfo2 only reads malloc's counters.
        let mapped_before = unsafe { libc::mallinfo2() }.hblks;
        let tensor = std::hint::black_box(vec![1.0f32; 1 << 20]);
        let mapped_with_tensor = unsafe { libc::mallinfo2() }.hblks;
        drop(tensor);

        assert_eq!(
            mapped_with_tensor, mapped_before,
            "a 4 MiB block was mapped on its own: M_MMAP_THRESHOLD was not applied"
        );
    }
}
