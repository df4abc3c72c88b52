"""Shared tiny settings of the deep RLHF tests."""

# 50-step Pendulum episodes, tiny networks: a reward update and an evaluation every 100 agent steps
SMOKE = dict(
    device="cpu",
    threads=1,
    max_episode_steps=50,
    total_pairs=40,
    initial_pairs=10,
    reward_update_interval=100,
    initial_reward_epochs=2,
    reward_batch_size=16,
    reward_hidden=[32, 32],
    action_samples=2,
    critic_hidden=[32, 32],
    critic_steps=5,
    critic_batch_size=32,
    sac_learning_starts=100,
    sac_buffer_size=2000,
    sac_batch_size=32,
    sac_net_arch=[32, 32],
    eval_interval=100,
    eval_episodes=1,
    held_out_pairs=50,
    checkpoint_interval=200,
)
