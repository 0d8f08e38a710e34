//! imagenet-classroom: classify students' photos with a pretrained ImageNet
//! network, as a command and as a web application behind Apache.

pub mod bench;
pub mod classify_cmd;
pub mod cli;
pub mod config;
pub mod decode;
pub mod depthwise;
pub mod labels;
mod libjpeg;
pub mod logging;
pub mod lrn;
pub mod malloc;
pub mod manifest;
pub mod maxpool;
pub mod model;
pub mod pool;
pub mod preprocess;
pub mod server;
pub mod web;
