//! libjpeg's error handling, made strict. On damaged compressed data libjpeg
//! only warns ("Corrupt JPEG data: bad Huffman code") and decodes on, giving
//! grey or noisy blocks that the network would still name something; here
//! those warnings stop the decode as its errors do. Both leave libjpeg by
//! unwinding, the only way out of its callbacks that skips the rest of its
//! work, and `decode` catches the unwind.

use std::os::raw::c_int;
use std::panic::resume_unwind;

use mozjpeg_sys::{jpeg_common_struct, jpeg_error_mgr, J_MESSAGE_CODE};

/// Why libjpeg stopped: the payload of its unwind.
#[derive(Debug)]
pub enum Stop {
    /// The data ended before the picture did.
    CutOff,
    /// The data is damaged or not a JPEG libjpeg can read; libjpeg's words.
    Broken(String),
}

/// Warnings that mean the compressed data itself is damaged. Others (an
/// unknown JFIF version, stray bytes between segments) leave the picture
/// whole, and browsers show such files, so they pass.
const DAMAGED: [J_MESSAGE_CODE; 5] = [
    mozjpeg_sys::JWRN_HIT_MARKER,
    mozjpeg_sys::JWRN_HUFF_BAD_CODE,
    mozjpeg_sys::JWRN_MUST_RESYNC,
    mozjpeg_sys::JWRN_NOT_SEQUENTIAL,
    mozjpeg_sys::JWRN_BOGUS_PROGRESSION,
];

/// An error manager for one decode that stops on errors and on damage.
pub fn strict_errors() -> jpeg_error_mgr {
    // SAFETY: the manager is plain data (numbers, pointers, optional function
    // pointers), for which all zeroes is valid, and jpeg_std_error fills in
    // every field.
    let mut manager: jpeg_error_mgr = unsafe { std::mem::zeroed() };
    unsafe { mozjpeg_sys::jpeg_std_error(&mut manager) };
    manager.error_exit = Some(give_up);
    manager.emit_message = Some(on_message);
    manager
}

extern "C-unwind" fn give_up(cinfo: &mut jpeg_common_struct) {
    resume_unwind(Box::new(Stop::Broken(message(cinfo))))
}

extern "C-unwind" fn on_message(cinfo: &mut jpeg_common_struct, level: c_int) {
    // Level -1 is a warning; the others are trace messages.
    if level >= 0 {
        return;
    }
    // SAFETY: libjpeg calls this with the decoder whose `err` is our manager,
    // alive for the whole decode.
    let code = unsafe { (*cinfo.err).msg_code };
    if code == mozjpeg_sys::JWRN_JPEG_EOF {
        resume_unwind(Box::new(Stop::CutOff));
    }
    if DAMAGED.contains(&code) {
        resume_unwind(Box::new(Stop::Broken(message(cinfo))));
    }
}

/// libjpeg's text for the message it has just raised.
fn message(cinfo: &mut jpeg_common_struct) -> String {
    // libjpeg asks for 200 bytes (JMSG_LENGTH_MAX); the binding declares 80
    // and a shared reference, so call it with a pointer to enough room.
    type Format = unsafe extern "C-unwind" fn(&mut jpeg_common_struct, *mut u8);
    let mut text = [0u8; 200];
    // SAFETY: `err` is our manager (see `on_message`); format_message is
    // libjpeg's own, which writes one NUL-terminated message into the buffer,
    // and the two pointer types have the same ABI.
    unsafe {
        if let Some(format) = (*cinfo.err).format_message {
            let format: Format = std::mem::transmute(format);
            format(cinfo, text.as_mut_ptr());
        }
    }
    let end = text.iter().position(|&b| b == 0).unwrap_or(text.len());
    String::from_utf8_lossy(&text[..end]).into_owned()
}
