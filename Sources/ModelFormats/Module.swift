import FlashCore
