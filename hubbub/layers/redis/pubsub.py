class RedisPubSubChannelLayer: pass
