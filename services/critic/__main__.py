from services.critic.main import main

main()
